/*
 * rdm.c - raw device mapping files: the record that names a LUN
 * (docs/FORMAT.md).  The I/O through a mapping is the virtual-disk layer's
 * (thin/rdm.c); the file system only keeps the record and the file's lock.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "fs/fs_int.h"

int fs_rdm_get(fs_vol *v, uint64_t ino, struct fs_rdm *r)
{
	struct fs_fd *fd = malloc(sizeof(*fd));
	int ret;

	if (!fd)
		return -ENOMEM;
	ret = fs_fd_read(v, ino, fd);
	if (!ret && fd->type != FS_T_RDM)
		ret = fd->type == FS_T_FREE ? -ENOENT : -EINVAL;
	if (!ret) {
		ret = fs_rdm_in(fd->rdm, r);
		if (ret)
			ret = fs_bad_meta(v, ret, "raw device mapping record",
					  fs_addr_ext(ino), fs_res_off(v, ino) +
					  FS_BLOCK +
					  offsetof(struct fs_fd_disk, rdm));
	}
	free(fd);
	return ret;
}

int fs_lun_extent(mp_lun *lun, char *label, size_t len, uint32_t *index)
{
	struct fs_ext e;
	int ret = fs_read_ext_header(lun, &e);

	if (ret == -FS_E_BADMAGIC)
		return -ENOENT;
	if (ret)
		return ret;
	snprintf(label, len, "%s", e.label);
	*index = e.index;
	return 0;
}
