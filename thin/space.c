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
	thin_walk_fn fn;
	void *arg;
	uint64_t *stack;
	size_t n, cap;
	int err;
};

static int visit(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct walk *w = arg;

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
	w->err = w->fn(w->arg, name, ino, type);
	return w->err ? 1 : 0;
}

int thin_walk(fs_vol *v, thin_walk_fn fn, void *arg)
{
	struct walk w = { .v = v, .fn = fn, .arg = arg };

	w.stack = malloc(64 * sizeof(*w.stack));
	if (!w.stack)
		return -ENOMEM;
	w.cap = 64;
	w.stack[w.n++] = fs_root(v);
	while (w.n && !w.err) {
		uint64_t dir = w.stack[--w.n];
		int r = fs_readdir(v, dir, visit, &w);

		/* a directory removed meanwhile is simply not counted */
		if (r && r != -ENOENT && r != -ENOTDIR && !w.err)
			w.err = r;
	}
	free(w.stack);
	return w.err > 0 ? 0 : w.err;
}

struct prov {
	fs_vol *v;
	uint64_t provisioned, files;
};

static int count_file(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct prov *p = arg;
	struct fs_stat st;

	(void)name;
	/* mappings (RDM) and symlinks use no space of the volume */
	if (type != FS_TYPE_FILE)
		return 0;
	/* gone meanwhile (another host removed it): not provisioned */
	if (fs_getattr(p->v, ino, &st) == 0) {
		p->provisioned += st.size > st.alloc ? st.size : st.alloc;
		p->files++;
	}
	return 0;
}

int thin_space(fs_vol *v, struct thin_space *s)
{
	struct fs_vol_info in;
	struct prov p = { .v = v };
	int ret = fs_vol_info(v, &in);

	memset(s, 0, sizeof(*s));
	if (ret)
		return ret;
	s->capacity = in.capacity;
	s->free = in.free;
	s->used = in.capacity - in.free;
	ret = thin_walk(v, count_file, &p);
	if (ret)
		return ret;
	s->provisioned = p.provisioned;
	s->files = p.files;
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
