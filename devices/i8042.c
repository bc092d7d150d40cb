/* The i8042 keyboard controller, reduced to what a guest without a keyboard needs: a
 * status register that never blocks the reset path, and the pulse-reset command 0xFE that
 * Linux's reboot=k (and the FADT reset register) use. */
#include <stdbool.h>
#include <string.h>

#include "devices/i8042.h"
#include "devices/power.h"
#include "vmm/vm.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64

static void i8042_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct vm *vm = opaque;
	if (!is_write) {
		/* Status 0: output buffer empty, input buffer empty, so kb_wait() returns at once. */
		memset(data, 0, len);
		return;
	}
	if (off == I8042_CMD_PORT - I8042_DATA_PORT && *(uint8_t *)data == POWER_RESET_VALUE)
		vm_stop(vm, VM_EXIT_RESET);
}

int i8042_init(struct vm *vm)
{
	return bus_register(&vm->pio, I8042_DATA_PORT, I8042_CMD_PORT - I8042_DATA_PORT + 1,
			    i8042_io, vm, "i8042");
}
