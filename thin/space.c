/*
 * space.c - provisioned space (the sum of what every file may grow to
 * without further allocation: its size) and the usage alarms.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "thin/space.h"

struct walk {
	fs_vol *v;
	uint64_t provisioned, files;
	uint64_t *stack;
	size_t n, cap;
	int err;
};

static int visit(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct walk *w = arg;
	struct fs_stat st;

	(void)name;
	if (type == FS_TYPE_DIR) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 64;
			uint64_t *s = realloc(w->stack, cap * sizeof(*s));

			if (!s) {
				w->err = -ENOMEM;
				return 1;
			}
			w->stack = s;
			w->cap = cap;
		}
		w->stack[w->n++] = ino;
		return 0;
	}
	if (type != FS_TYPE_FILE)
		return 0;
	/* gone meanwhile (another host removed it): not provisioned */
	if (fs_getattr(w->v, ino, &st) == 0) {
		w->provisioned += st.size > st.alloc ? st.size : st.alloc;
		w->files++;
	}
	return 0;
}

int thin_space(fs_vol *v, struct thin_space *s)
{
	struct fs_vol_info in;
	struct walk w = { .v = v };
	int ret = fs_vol_info(v, &in);

	memset(s, 0, sizeof(*s));
	if (ret)
		return ret;
	s->capacity = in.capacity;
	s->free = in.free;
	s->used = in.capacity - in.free;
	w.stack = malloc(64 * sizeof(*w.stack));
	if (!w.stack)
		return -ENOMEM;
	w.cap = 64;
	w.stack[w.n++] = fs_root(v);
	while (w.n && !w.err) {
		uint64_t dir = w.stack[--w.n];
		int r = fs_readdir(v, dir, visit, &w);

		/* a directory removed meanwhile is simply not counted */
		if (r && r != -ENOENT && r != -ENOTDIR)
			w.err = r;
	}
	free(w.stack);
	if (w.err)
		return w.err;
	s->provisioned = w.provisioned;
	s->files = w.files;
	s->level = thin_space_level(s->used, s->capacity);
	return 0;
}

enum thin_level thin_space_level(uint64_t used, uint64_t capacity)
{
	if (!capacity)
		return THIN_SPACE_OK;
	if (used * 100 >= capacity * THIN_ALERT_PCT)
		return THIN_SPACE_ALERT;
	if (used * 100 >= capacity * THIN_WARN_PCT)
		return THIN_SPACE_WARNING;
	return THIN_SPACE_OK;
}

const char *thin_level_name(enum thin_level l)
{
	switch (l) {
	case THIN_SPACE_WARNING: return "warning";
	case THIN_SPACE_ALERT: return "alert";
	default: return "ok";
	}
}
