/* Power: ACPI S5 (power-off) through the PM1a control register, and the status port
 * through which the guest image hands minivmm its command's exit status.  Reset is the
 * i8042's job (devices/i8042.c), which the FADT reset register points at. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "devices/power.h"
#include "vmm/vm.h"

#define PM1_SCI_EN        0x0001   /* ACPI mode: always on, there is no legacy mode */
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_TYP_MASK  0x1c00
#define PM1_SLP_EN        0x2000

/* Nothing ever raises an ACPI event (no buttons, no timer), so the PM1 status register
 * reads 0 and the enable register is plain storage. */
struct power {
	struct vm *vm;
	pthread_mutex_t lock;
	uint16_t pm1_enable;
	uint16_t pm1_control;
};

static void pm1_rw(uint16_t *reg, uint64_t off, void *data, unsigned len, bool is_write)
{
	uint8_t *bytes = (uint8_t *)reg;
	for (unsigned i = 0; i < len; i++) {
		if (off + i >= 2) {
			if (!is_write)
				((uint8_t *)data)[i] = 0;
			continue;
		}
		if (is_write)
			bytes[off + i] = ((uint8_t *)data)[i];
		else
			((uint8_t *)data)[i] = bytes[off + i];
	}
}

static void pm1_evt_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct power *pw = opaque;
	uint16_t status = 0;
	pthread_mutex_lock(&pw->lock);
	if (off < 2)
		pm1_rw(&status, off, data, len, is_write);   /* write-1-to-clear of nothing */
	else
		pm1_rw(&pw->pm1_enable, off - 2, data, len, is_write);
	pthread_mutex_unlock(&pw->lock);
}

static void pm1_cnt_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct power *pw = opaque;
	struct vm *vm = pw->vm;
	pthread_mutex_lock(&pw->lock);
	pm1_rw(&pw->pm1_control, off, data, len, is_write);
	uint16_t v = pw->pm1_control;
	if (is_write)
		pw->pm1_control = (v & ~PM1_SLP_EN) | PM1_SCI_EN; /* SLP_EN is write-only */
	pthread_mutex_unlock(&pw->lock);
	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN: only the second one sleeps.  Only
	 * \_S5 is offered in the DSDT, so any other type is ignored. */
	if (is_write && (v & PM1_SLP_EN) &&
	    ((v & PM1_SLP_TYP_MASK) >> PM1_SLP_TYP_SHIFT) == POWER_S5_TYPE)
		vm_stop(vm, 0);
}

static void status_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct vm *vm = opaque;
	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	vm_stop(vm, *(uint8_t *)data);
}

/* Port 0x80 is the POST/delay port Linux writes for I/O pacing: swallow it quietly. */
static void sink_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	if (!is_write)
		memset(data, 0xff, len);
}

int power_init(struct vm *vm)
{
	struct power *pw = calloc(1, sizeof(*pw));
	if (!pw)
		return -ENOMEM;
	pw->vm = vm;
	pw->pm1_control = PM1_SCI_EN;
	pthread_mutex_init(&pw->lock, NULL);
	int ret = bus_register(&vm->pio, POWER_PM1A_EVT_PORT, POWER_PM1_EVT_LEN, pm1_evt_io, pw,
			       "acpi-pm1-evt");
	if (!ret)
		ret = bus_register(&vm->pio, POWER_PM1A_CNT_PORT, POWER_PM1_CNT_LEN, pm1_cnt_io, pw,
				   "acpi-pm1-cnt");
	if (!ret)
		ret = bus_register(&vm->pio, POWER_STATUS_PORT, 1, status_io, vm, "status");
	if (!ret)
		ret = bus_register(&vm->pio, 0x80, 1, sink_io, vm, "post");
	return ret;
}
