/*
 * uart.c - an 8250/16550A at 0x3f8 (IRQ 4), transmit only.
 *
 * The transmitter is infinitely fast: LSR always reports THR and the shift
 * register empty.  Output is buffered per line (or 256 bytes) and written
 * to the console fd.  For drivers that transmit on interrupts (Linux's
 * 8250 driver), a write to THR or to IER with THRI enabled raises a
 * "THR empty" interrupt on IRQ 4 (edge: the line is pulsed), cleared when
 * the guest reads IIR, as on the real chip.
 */
#include <string.h>
#include <unistd.h>

#include "hypervisor/hv_int.h"

#define UART_IRQ	4
#define IER_THRI	0x02
#define LCR_DLAB	0x80
#define LSR_IDLE	0x60	/* THRE | TEMT */
#define IIR_NONE	0x01
#define IIR_THRI	0x02
#define IIR_FIFO	0xc0

void hv_uart_init(struct hv_uart *u, struct hv_vm *vm, int fd)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->vm = vm;
	u->fd = fd;
}

static void flush_locked(struct hv_uart *u)
{
	size_t off = 0;

	while (off < u->len) {
		ssize_t n = write(u->fd, u->buf + off, u->len - off);

		if (n <= 0)
			break;	/* console gone: drop output, keep running */
		off += (size_t)n;
	}
	u->len = 0;
}

void hv_uart_flush(struct hv_uart *u)
{
	pthread_mutex_lock(&u->lock);
	flush_locked(u);
	pthread_mutex_unlock(&u->lock);
}

void hv_uart_io(void *opaque, uint16_t port, uint8_t *data, unsigned size,
		bool write)
{
	struct hv_uart *u = opaque;
	unsigned reg = port - HV_PORT_UART;
	bool irq = false;

	if (size != 1) {
		if (!write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&u->lock);
	if (write) {
		uint8_t v = *data;

		switch (reg) {
		case 0:
			if (u->lcr & LCR_DLAB) {
				u->dll = v;
				break;
			}
			u->buf[u->len++] = (char)v;
			if (v == '\n' || u->len == sizeof(u->buf))
				flush_locked(u);
			if (u->ier & IER_THRI) {
				u->thri_pending = true;
				irq = true;
			}
			break;
		case 1:
			if (u->lcr & LCR_DLAB) {
				u->dlm = v;
				break;
			}
			if ((v & IER_THRI) && !(u->ier & IER_THRI)) {
				u->thri_pending = true;
				irq = true;
			}
			u->ier = v & 0x0f;
			break;
		case 3: u->lcr = v; break;
		case 4: u->mcr = v; break;
		case 7: u->scr = v; break;
		default: break;	/* FCR, LSR, MSR: nothing to do */
		}
	} else {
		switch (reg) {
		case 0: *data = u->lcr & LCR_DLAB ? u->dll : 0; break;
		case 1: *data = u->lcr & LCR_DLAB ? u->dlm : u->ier; break;
		case 2:
			*data = IIR_FIFO | (u->thri_pending && (u->ier & IER_THRI) ?
					    IIR_THRI : IIR_NONE);
			u->thri_pending = false;
			break;
		case 3: *data = u->lcr; break;
		case 4: *data = u->mcr; break;
		case 5: *data = LSR_IDLE; break;
		case 6: *data = 0xb0; break;	/* DCD, DSR, CTS */
		case 7: *data = u->scr; break;
		}
	}
	pthread_mutex_unlock(&u->lock);
	if (irq && u->vm) {
		hv_vm_irq_line(u->vm, UART_IRQ, 1);
		hv_vm_irq_line(u->vm, UART_IRQ, 0);
	}
}
