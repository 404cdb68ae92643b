/*
 * hv.h - the KVM executor: VM configuration (.vmx), virtual-disk backends
 * and the virtual machine itself.
 *
 * A VM is described by a struct hv_vmx (parsed from a VMware-syntax .vmx
 * file), gets one struct hv_disk per virtual disk (an ops table: raw LUN or
 * file today, snapshot chains or a Storage VMotion mirror later, swapped in
 * behind the same virtio-blk device), and runs with hv_vm_run() until the
 * guest powers off or resets.
 *
 * Every function returns 0 (or a count) on success and -errno on failure;
 * functions that parse user input also fill a message buffer.
 */
#ifndef HV_H
#define HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- VM configuration (.vmx) ---------------------------------------------- */

#define HV_MAX_VCPUS	8
#define HV_MAX_DISKS	16	/* scsi0:0 .. scsi0:15 */
#define HV_MIN_MEM_MIB	2
#define HV_MAX_MEM_MIB	65536
#define HV_MAX_CMDLINE	2048

struct hv_vmx_disk {
	unsigned unit;		/* N of scsi0:N */
	char *file;		/* fileName as resolved (absolute or a spec) */
	bool ctk;		/* ctkEnabled and scsi0:N.ctkEnabled both TRUE:
				 * changed-block tracking turned on at start */
};

struct hv_vmx {
	char *display_name;
	uint64_t mem_mib;		/* memSize, default 256 */
	unsigned vcpus;			/* numvcpus, default 1 */
	char *kernel;			/* boot.kernel (required) */
	char *initrd;			/* boot.initrd or NULL */
	char *cmdline;			/* boot.cmdline or "" */
	char *serial_file;		/* serial0.fileName or NULL = stdout */
	unsigned ndisks;		/* present disks, by unit number */
	struct hv_vmx_disk disks[HV_MAX_DISKS];
};

/*
 * Parse the text of a .vmx file.  `dir` is the folder relative paths resolve
 * against.  Checks syntax, keys and ranges only (no file is opened).  On
 * error returns -EINVAL with a message ("line 3: unknown key 'foo'") in err.
 * On success free *out with hv_vmx_free().
 */
int hv_vmx_parse(const char *text, size_t len, const char *dir,
		 struct hv_vmx *out, char *err, size_t errlen);

/*
 * Read and parse the file at path, then check that the kernel, initrd and
 * disk files exist (disk names that are LUN specs, "iscsi://..." or
 * "fault:...", are left to the device layer).  -ENOENT etc. with a message.
 */
int hv_vmx_load(const char *path, struct hv_vmx *out, char *err,
		size_t errlen);

void hv_vmx_free(struct hv_vmx *vmx);

/* ---- virtual-disk backends ------------------------------------------------ */

enum hv_disk_op { HV_DISK_READ = 1, HV_DISK_WRITE, HV_DISK_FLUSH };

struct hv_disk_req;
typedef void (*hv_disk_cb)(struct hv_disk_req *req);

/*
 * One disk request.  The caller owns it until its callback has run.  The
 * callback runs on a backend thread (never inside submit) with result = 0
 * or -error.  Offsets and lengths are bytes, multiples of the disk's sector.
 */
struct hv_disk_req {
	enum hv_disk_op op;
	uint64_t offset;
	uint64_t len;
	const struct iovec *iov;
	int iovcnt;
	hv_disk_cb cb;
	void *priv;			/* caller's */
	int result;
	void *be_priv;			/* backend's */
	uint64_t be_space[24];		/* backend's, e.g. an mp_io */
};

struct hv_disk;

struct hv_disk_ops {
	const char *name;
	/* Queue a request; 0 = accepted (cb will run once), or -error (no cb). */
	int (*submit)(struct hv_disk *disk, struct hv_disk_req *req);
	void (*close)(struct hv_disk *disk);	/* waits for requests */
};

struct hv_disk {
	const struct hv_disk_ops *ops;
	uint64_t size;			/* bytes */
	uint32_t sector;		/* logical sector, bytes */
	bool readonly;
	char *name;			/* for messages */
	void *priv;
};

/*
 * Called once when a disk can no longer do I/O safely (a mapped disk whose
 * vmfsd went away or was fenced): every request from then on fails.  Runs
 * on a backend thread; why is a message.
 */
typedef void (*hv_disk_fence_fn)(void *arg, struct hv_disk *disk,
				 const char *why);

struct hv_disk_opts {
	bool readonly;
	hv_disk_fence_fn fence;		/* may be NULL */
	void *fence_arg;
	bool no_mapped;			/* a disk on a vmfsd mount through the
					 * mount (FUSE), not mapped */
};

/*
 * Open a disk named as in a .vmx: a raw image file, a LUN spec of the device
 * layer, or a VMware monolithicFlat descriptor (.vmdk text naming one FLAT
 * extent), which maps to its flat extent.  A data file on a vmfsd mount is
 * opened "mapped": attached through the host's vmfsd (which holds its lock
 * and allocates), its I/O done on the volume's LUNs straight (disk_mapped.c).
 * Messages go to err.
 */
int hv_disk_open_opts(const char *name, const struct hv_disk_opts *o,
		      struct hv_disk **out, char *err, size_t errlen);
int hv_disk_open(const char *name, bool readonly, struct hv_disk **out,
		 char *err, size_t errlen);

static inline int hv_disk_submit(struct hv_disk *d, struct hv_disk_req *r)
{
	return d->ops->submit(d, r);
}

/*
 * Close (ops->close waits for every submitted request and releases the
 * backend's state), then free disk->name and disk: a backend allocates
 * struct hv_disk (possibly as the first member of its own structure) and
 * the name with malloc.
 */
void hv_disk_close(struct hv_disk *disk);

/* ---- the VM --------------------------------------------------------------- */

typedef struct hv_vm hv_vm;

enum hv_exit {
	HV_EXIT_POWEROFF = 1,	/* guest powered off (port 0xf4) */
	HV_EXIT_RESET,		/* guest reset (i8042 0xfe, port 0xcf9) */
	HV_EXIT_SHUTDOWN,	/* triple fault */
	HV_EXIT_ERROR,		/* VMM-side failure, see the log */
	HV_EXIT_SIGNAL,		/* hv_vm_stop() */
};

/*
 * Create a VM from a configuration: KVM VM with in-kernel irqchip and PIT,
 * guest memory, the kernel loaded, vCPUs, UART, PCI with one virtio-blk
 * device per disk.  The disks are handed over to the VM (closed by
 * hv_vm_destroy).  Messages go to err.
 */
int hv_vm_create(const struct hv_vmx *vmx, struct hv_disk **disks,
		 unsigned ndisks, hv_vm **out, char *err, size_t errlen);

/* Run until the guest powers off or resets; returns enum hv_exit. */
int hv_vm_run(hv_vm *vm);

/* Ask a running VM to stop (any thread, async-signal-safe). */
void hv_vm_stop(hv_vm *vm);

void hv_vm_destroy(hv_vm *vm);

const char *hv_exit_str(int why);

#ifdef __cplusplus
}
#endif
#endif /* HV_H */
