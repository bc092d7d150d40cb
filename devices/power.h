/* How the guest stops the machine: ACPI PM1 registers, the reset value, the status port. */
#ifndef MINIVMM_POWER_H
#define MINIVMM_POWER_H
#include <stdint.h>

struct vm;

/* ACPI fixed-hardware PM1a event block (status, enable: 2 bytes each) and control block. */
#define POWER_PM1A_EVT_PORT   0x600
#define POWER_PM1_EVT_LEN     4
#define POWER_PM1A_CNT_PORT   0x604
#define POWER_PM1_CNT_LEN     2
/* FADT RESET_REG points at the i8042 command port; writing this value resets. */
#define POWER_RESET_PORT      0x64
#define POWER_RESET_VALUE     0xFE
/* The guest image writes its command's exit status here (one byte); minivmm exits with it. */
#define POWER_STATUS_PORT     0xf4
/* \_S5 sleep type the DSDT advertises: writing it with SLP_EN powers off. */
#define POWER_S5_TYPE         5

int power_init(struct vm *vm) __attribute__((warn_unused_result));

#endif
