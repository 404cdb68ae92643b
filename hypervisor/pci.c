/*
 * pci.c - PCI configuration space through ports 0xcf8/0xcfc (mechanism #1),
 * one bus, a host bridge in slot 0, devices with one I/O BAR.
 *
 * The VMM assigns BARs itself (there is no firmware) and enables I/O
 * decoding, like kvmtool; a guest may still size and move them.  Writable
 * fields: command, BAR 0, interrupt line; everything else is read-only.
 */
#include <errno.h>
#include <string.h>

#include "hypervisor/hv_int.h"

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

void hv_pci_init(struct hv_pci *pci)
{
	memset(pci, 0, sizeof(*pci));
	pthread_mutex_init(&pci->lock, NULL);
	/* Intel 440FX host bridge: what guests expect in slot 0 */
	put16(pci->host.cfg + 0x00, 0x8086);
	put16(pci->host.cfg + 0x02, 0x1237);
	put32(pci->host.cfg + 0x08, 0x06000002);
	pci->dev[0] = &pci->host;
}

uint16_t hv_pci_bar_base(const struct hv_pci_dev *d)
{
	return (uint16_t)(get32(d->cfg + 0x10) & ~3u);
}

uint64_t hv_pci_mem_base(const struct hv_pci_dev *d)
{
	return get32(d->cfg + 0x20) & ~0xfu;
}

void hv_pci_add_mem_bar(struct hv_pci_dev *d, uint32_t mem_size)
{
	d->mem_size = mem_size;
	/* one window per slot: slots are at most 32, sizes at most 64 KiB */
	put32(d->cfg + 0x20, (uint32_t)(HV_PCI_MEM_BASE + d->slot * 0x10000ull));
	put16(d->cfg + 0x04, get16(d->cfg + 0x04) | 0x2);	/* memory on */
}

int hv_pci_add_cap(struct hv_pci_dev *d, const uint8_t *cap, unsigned len)
{
	unsigned at = d->cap_next ? d->cap_next : 0x40;

	if (len < 2 || at + len > sizeof(d->cfg))
		return -ENOSPC;
	memcpy(d->cfg + at, cap, len);
	d->cfg[at + 1] = d->cfg[0x34];		/* push on the front */
	d->cfg[0x34] = (uint8_t)at;
	d->cap_next = (uint8_t)((at + len + 3) & ~3u);
	put16(d->cfg + 0x06, get16(d->cfg + 0x06) | 0x10);	/* cap list */
	return (int)at;
}

int hv_pci_add(struct hv_pci *pci, struct hv_pci_dev *d, uint16_t vendor,
	       uint16_t device, uint32_t class_rev, uint16_t subsys,
	       uint32_t bar_size)
{
	unsigned slot;

	for (slot = 1; slot < HV_PCI_MAX_SLOTS && pci->dev[slot]; slot++)
		;
	if (slot == HV_PCI_MAX_SLOTS)
		return -ENOSPC;
	memset(d->cfg, 0, sizeof(d->cfg));
	put16(d->cfg + 0x00, vendor);
	put16(d->cfg + 0x02, device);
	put16(d->cfg + 0x04, 0x0001);		/* I/O space enabled */
	put32(d->cfg + 0x08, class_rev);
	put32(d->cfg + 0x10, (HV_PCI_IO_BASE + slot * 0x100u) | 1u);
	put16(d->cfg + 0x2c, vendor);		/* subsystem vendor */
	put16(d->cfg + 0x2e, subsys);
	d->slot = slot;
	d->gsi = HV_PCI_IRQ_BASE + (slot - 1) % 8;
	d->cfg[0x3c] = (uint8_t)d->gsi;		/* interrupt line */
	d->cfg[0x3d] = 1;			/* INTA# */
	d->bar_size = bar_size;
	d->mem_size = 0;
	d->cap_next = 0;
	pci->dev[slot] = d;
	return 0;
}

static uint64_t io_decoded(const struct hv_pci_dev *d)
{
	return (d->cfg[4] & 1) ? hv_pci_bar_base(d) : 0;
}

static uint64_t mem_decoded(const struct hv_pci_dev *d)
{
	return d->mem_size && (d->cfg[4] & 2) ? hv_pci_mem_base(d) : 0;
}

static void cfg_write(struct hv_pci_dev *d, unsigned off, uint32_t v,
		      unsigned size)
{
	uint64_t old_io = io_decoded(d), old_mem = mem_decoded(d), now;
	uint8_t b[4];

	memcpy(b, &v, 4);
	for (unsigned i = 0; i < size; i++) {
		unsigned o = off + i;

		if (o == 0x04)
			d->cfg[o] = b[i] & 0x07;	/* io, mem, master */
		else if (o >= 0x10 && o < 0x14)
			d->cfg[o] = b[i];
		else if (o >= 0x20 && o < 0x24 && d->mem_size)
			d->cfg[o] = b[i];
		else if (o == 0x3c)
			d->cfg[o] = b[i];
	}
	/* BAR 0: size mask, I/O indicator, 16-bit ports; BAR 4: size mask,
	 * 32-bit non-prefetchable memory */
	put32(d->cfg + 0x10, ((get32(d->cfg + 0x10) & ~(d->bar_size - 1)) &
			      0xfffcu) | 1u);
	if (d->mem_size)
		put32(d->cfg + 0x20, get32(d->cfg + 0x20) & ~(d->mem_size - 1) &
		      ~0xfu);
	now = io_decoded(d);
	if (now != old_io && d->bar_moved)
		d->bar_moved(d->opaque, 0, old_io, now);
	now = mem_decoded(d);
	if (now != old_mem && d->bar_moved)
		d->bar_moved(d->opaque, 4, old_mem, now);
}

void hv_pci_cfg_io(void *opaque, uint16_t port, uint8_t *data, unsigned size,
		   bool write)
{
	struct hv_pci *pci = opaque;
	struct hv_pci_dev *d = NULL;
	unsigned off;

	pthread_mutex_lock(&pci->lock);
	if (port == HV_PORT_PCI_ADDR && size == 4) {
		if (write)
			memcpy(&pci->addr, data, 4);
		else
			memcpy(data, &pci->addr, 4);
		goto out;
	}
	if (port < HV_PORT_PCI_DATA) {
		if (!write)
			memset(data, 0xff, size);
		goto out;
	}
	off = (pci->addr & 0xfc) + (port - HV_PORT_PCI_DATA);
	/* enabled, bus 0, function 0 only */
	if ((pci->addr & 0x80000000u) && !(pci->addr & 0x00ff0700u))
		d = pci->dev[(pci->addr >> 11) & 0x1f];
	if (!d || off + size > 256) {
		if (!write)
			memset(data, 0xff, size);
		goto out;
	}
	if (write) {
		uint32_t v = 0;

		memcpy(&v, data, size);
		cfg_write(d, off, v, size);
	} else {
		memcpy(data, d->cfg + off, size);
	}
out:
	pthread_mutex_unlock(&pci->lock);
}

bool hv_pci_bar_io(struct hv_pci *pci, uint16_t port, uint8_t *data,
		   unsigned size, bool write)
{
	for (unsigned s = 1; s < HV_PCI_MAX_SLOTS; s++) {
		struct hv_pci_dev *d = pci->dev[s];
		uint16_t base;

		if (!d || !(d->cfg[4] & 1))
			continue;
		base = hv_pci_bar_base(d);
		if (port >= base && port + size <= base + d->bar_size) {
			d->bar_io(d->opaque, (uint16_t)(port - base), data, size,
				  write);
			return true;
		}
	}
	return false;
}

bool hv_pci_mmio(struct hv_pci *pci, uint64_t addr, uint8_t *data,
		 unsigned size, bool write)
{
	for (unsigned s = 1; s < HV_PCI_MAX_SLOTS; s++) {
		struct hv_pci_dev *d = pci->dev[s];
		uint64_t base = d ? mem_decoded(d) : 0;

		if (!base || addr < base || addr - base >= d->mem_size ||
		    size > d->mem_size - (addr - base))
			continue;
		d->mem_io(d->opaque, addr - base, data, size, write);
		return true;
	}
	return false;
}
