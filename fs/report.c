/*
 * report.c - what the tools ask about: a path's file, who holds its lock
 * (vmkfstools -D), and where its lock lives.
 */
#include <errno.h>
#include <string.h>

#include "fs/fs_int.h"

int fs_resolve(fs_vol *v, const char *path, struct fs_stat *st)
{
	char name[FS_NAME_MAX + 1];
	uint64_t cur = fs_root(v);
	int ret = fs_getattr(v, cur, st);

	while (!ret && *path) {
		const char *end;
		size_t len;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		end = strchrnul(path, '/');
		len = (size_t)(end - path);
		if (len > FS_NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, path, len);
		name[len] = 0;
		path = end;
		if (st->type != FS_TYPE_DIR)
			return -ENOTDIR;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, ".."))
			return -EINVAL;     /* callers pass real paths */
		ret = fs_lookup(v, cur, name, st);
		cur = st->ino;
	}
	return ret;
}

int fs_lock_report(fs_vol *v, uint64_t ino, struct fs_lock_report *r)
{
	struct fs_inode *in;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!fs_addr_valid(v, ino, FS_R_FD))
		return -ENOENT;
	r->ext = fs_addr_ext(ino);
	r->lock_off = fs_res_off(v, ino);
	r->hb_off = v->sb.hb_off;
	ret = fs_inode_get(v, ino, &in);
	if (ret)
		return ret;
	pthread_mutex_lock(&in->m);
	r->opens_rw = in->opens_rw;
	r->opens_ro = in->opens_ro;
	r->held = in->held;
	pthread_mutex_unlock(&in->m);
	fs_inode_put(in);
	return fs_inode_lock_info(v, ino, &r->info);
}
