/*
 * ondisk.c - encode and decode the file system's on-disk structures.  All
 * byte order conversion and checksumming happens here.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#include "fs/fs.h"
#include "fs/fs_err.h"
#include "fs/ondisk.h"
#include "multipath/mp.h"

static uint16_t g16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t g32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t g64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static void p16(unsigned char *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void p32(unsigned char *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void p64(unsigned char *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

#define G16(b, s, f) g16((b) + offsetof(s, f))
#define G32(b, s, f) g32((b) + offsetof(s, f))
#define G64(b, s, f) g64((b) + offsetof(s, f))
#define P16(b, s, f, v) p16((b) + offsetof(s, f), (v))
#define P32(b, s, f, v) p32((b) + offsetof(s, f), (v))
#define P64(b, s, f, v) p64((b) + offsetof(s, f), (v))

static int check(const unsigned char *b, uint32_t magic)
{
	if (g32(b) != magic)
		return -FS_E_BADMAGIC;
	if (mp_crc32c(0, b, FS_CRC_OFF) != g32(b + FS_CRC_OFF))
		return -FS_E_CHECKSUM;
	if (g16(b + 4) != FS_MAJOR)
		return -FS_E_VERSION;
	return 0;
}

static void seal(unsigned char *b, uint32_t magic)
{
	p32(b, magic);
	p16(b + 4, FS_MAJOR);
	p16(b + 6, FS_MINOR);
	p32(b + FS_CRC_OFF, mp_crc32c(0, b, FS_CRC_OFF));
}

/* Copy a fixed on-disk string field into a NUL-terminated buffer, clearing
 * whatever follows its end (so that a re-encode gives the same bytes). */
static void get_str(char *dst, size_t dlen, const unsigned char *src, size_t slen)
{
	size_t n;

	memcpy(dst, src, slen < dlen - 1 ? slen : dlen - 1);
	dst[slen < dlen - 1 ? slen : dlen - 1] = 0;
	n = strlen(dst);
	memset(dst + n, 0, dlen - n);
}

static void put_str(unsigned char *dst, size_t dlen, const char *src)
{
	memcpy(dst, src, strnlen(src, dlen));
}

/* ---- extent header ------------------------------------------------------- */

int fs_ext_in(const void *buf, struct fs_ext *e)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_EXT_MAGIC);

	if (ret)
		return ret;
	memset(e, 0, sizeof(*e));
	memcpy(e->uuid, b + offsetof(struct fs_ext_disk, uuid), 16);
	e->index = G32(b, struct fs_ext_disk, index);
	e->count = G32(b, struct fs_ext_disk, count);
	e->size = G64(b, struct fs_ext_disk, size);
	e->tag = G32(b, struct fs_ext_disk, tag);
	get_str(e->label, sizeof(e->label), b + offsetof(struct fs_ext_disk, label),
		FS_LABEL_LEN);
	if (e->index >= FS_MAX_EXTENTS || e->count == 0 ||
	    e->count > FS_MAX_EXTENTS || e->index >= e->count)
		return -FS_E_CORRUPT;
	return 0;
}

void fs_ext_out(const struct fs_ext *e, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	memcpy(b + offsetof(struct fs_ext_disk, uuid), e->uuid, 16);
	P32(b, struct fs_ext_disk, index, e->index);
	P32(b, struct fs_ext_disk, count, e->count);
	P64(b, struct fs_ext_disk, size, e->size);
	P32(b, struct fs_ext_disk, tag, e->tag);
	put_str(b + offsetof(struct fs_ext_disk, label), FS_LABEL_LEN, e->label);
	seal(b, FS_EXT_MAGIC);
}

int fs_ext_tag_new(uint32_t *tag)
{
	do {
		if (getrandom(tag, sizeof(*tag), 0) != sizeof(*tag))
			return errno ? -errno : -EIO;
	} while (!*tag);
	return 0;
}

/* ---- superblock ------------------------------------------------------------ */

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int fs_sb_in(const void *buf, struct fs_sb *s)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_SB_MAGIC);

	if (ret)
		return ret;
	memset(s, 0, sizeof(*s));
	s->minor = G16(b, struct fs_sb_disk, minor);
	s->compat = G32(b, struct fs_sb_disk, compat);
	s->ro_compat = G32(b, struct fs_sb_disk, ro_compat);
	s->incompat = G32(b, struct fs_sb_disk, incompat);
	s->sector = G32(b, struct fs_sb_disk, sector);
	memcpy(s->uuid, b + offsetof(struct fs_sb_disk, uuid), 16);
	get_str(s->label, sizeof(s->label), b + offsetof(struct fs_sb_disk, label),
		FS_LABEL_LEN);
	s->ctime_ns = G64(b, struct fs_sb_disk, ctime_ns);
	s->block_size = G32(b, struct fs_sb_disk, block_size);
	s->sb_size = G32(b, struct fs_sb_disk, sb_size);
	s->slots = G32(b, struct fs_sb_disk, slots);
	s->journal_blocks = G32(b, struct fs_sb_disk, journal_blocks);
	s->hb_off = G64(b, struct fs_sb_disk, hb_off);
	s->journal_off = G64(b, struct fs_sb_disk, journal_off);
	s->root = G64(b, struct fs_sb_disk, root);
	s->nextents = G32(b, struct fs_sb_disk, nextents);
	s->geom_gen = G64(b, struct fs_sb_disk, geom_gen);
	if (s->incompat & ~FS_INCOMPAT_KNOWN)
		return -FS_E_VERSION;
	if ((s->sector != 512 && s->sector != 4096) ||
	    !pow2(s->block_size) || s->block_size < (64u << 10) ||
	    s->block_size > (8u << 20) || s->sb_size != 8192 ||
	    s->slots == 0 || s->slots > 2048 || s->journal_blocks < 16 ||
	    s->nextents == 0 || s->nextents > FS_MAX_EXTENTS ||
	    fs_addr_type(s->root) != FS_R_FD)
		return -FS_E_CORRUPT;
	for (unsigned i = 0; i < FS_MAX_EXTENTS; i++) {
		const unsigned char *g = b + offsetof(struct fs_sb_disk, ext) +
					 i * sizeof(struct fs_extent_geom_disk);
		struct fs_extent_geom *eg = &s->ext[i];

		eg->size = g64(g);
		eg->lun_of = g32(g + 8);
		eg->tag = g32(g + 12);
		/* an area set on another extent's LUN names an earlier extent
		 * that has a LUN of its own, and has no header (no tag) */
		if (i < s->nextents && eg->lun_of &&
		    (eg->lun_of > i || s->ext[eg->lun_of - 1].lun_of || eg->tag ||
		     !(s->incompat & FS_INCOMPAT_LUN_SHARED)))
			return -FS_E_CORRUPT;
		for (unsigned a = 0; a < FS_AREAS; a++) {
			const unsigned char *ar = g + 16 + a * 24;

			eg->area[a].clusters = g32(ar);
			eg->area[a].per_cluster = g32(ar + 4);
			eg->area[a].meta_off = g64(ar + 8);
			eg->area[a].res_off = g64(ar + 16);
			if (i < s->nextents &&
			    (eg->area[a].per_cluster > FS_RC_MAX_BITS ||
			     eg->area[a].meta_off > eg->size ||
			     eg->area[a].res_off > eg->size))
				return -FS_E_CORRUPT;
		}
	}
	return 0;
}

void fs_sb_out(const struct fs_sb *s, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P32(b, struct fs_sb_disk, compat, s->compat);
	P32(b, struct fs_sb_disk, ro_compat, s->ro_compat);
	P32(b, struct fs_sb_disk, incompat, s->incompat);
	P32(b, struct fs_sb_disk, sector, s->sector);
	memcpy(b + offsetof(struct fs_sb_disk, uuid), s->uuid, 16);
	put_str(b + offsetof(struct fs_sb_disk, label), FS_LABEL_LEN, s->label);
	P64(b, struct fs_sb_disk, ctime_ns, s->ctime_ns);
	P32(b, struct fs_sb_disk, block_size, s->block_size);
	P32(b, struct fs_sb_disk, sb_size, s->sb_size);
	P32(b, struct fs_sb_disk, slots, s->slots);
	P32(b, struct fs_sb_disk, journal_blocks, s->journal_blocks);
	P64(b, struct fs_sb_disk, hb_off, s->hb_off);
	P64(b, struct fs_sb_disk, journal_off, s->journal_off);
	P64(b, struct fs_sb_disk, root, s->root);
	P32(b, struct fs_sb_disk, nextents, s->nextents);
	P64(b, struct fs_sb_disk, geom_gen, s->geom_gen);
	for (unsigned i = 0; i < FS_MAX_EXTENTS; i++) {
		unsigned char *g = b + offsetof(struct fs_sb_disk, ext) +
				   i * sizeof(struct fs_extent_geom_disk);
		const struct fs_extent_geom *eg = &s->ext[i];

		p64(g, eg->size);
		p32(g + 8, eg->lun_of);
		p32(g + 12, eg->tag);
		for (unsigned a = 0; a < FS_AREAS; a++) {
			unsigned char *ar = g + 16 + a * 24;

			p32(ar, eg->area[a].clusters);
			p32(ar + 4, eg->area[a].per_cluster);
			p64(ar + 8, eg->area[a].meta_off);
			p64(ar + 16, eg->area[a].res_off);
		}
	}
	seal(b, FS_SB_MAGIC);
}

/* ---- resource cluster -------------------------------------------------------- */

int fs_rc_in(const void *buf, struct fs_rc *r)
{
	const unsigned char *b = buf;
	unsigned used = 0;
	int ret = check(b, FS_RC_MAGIC);

	if (ret)
		return ret;
	memset(r, 0, sizeof(*r));
	r->type = G32(b, struct fs_rc_disk, type);
	r->extent = G32(b, struct fs_rc_disk, extent);
	r->cluster = G32(b, struct fs_rc_disk, cluster);
	r->nres = G32(b, struct fs_rc_disk, nres);
	r->nfree = G32(b, struct fs_rc_disk, nfree);
	memcpy(r->bitmap, b + FS_RC_HDR, sizeof(r->bitmap));
	if (r->type == FS_R_NONE || r->type >= FS_R_TYPES ||
	    r->extent >= FS_MAX_EXTENTS || r->nres > FS_RC_MAX_BITS ||
	    r->nfree > r->nres)
		return -FS_E_CORRUPT;
	/* the free count must agree with the bitmap, and no bit may be set
	 * beyond nres (whole bytes first: this runs for every cluster
	 * header a transaction or an allocation looks at) */
	for (unsigned i = 0; i < sizeof(r->bitmap); i++) {
		unsigned byte = r->bitmap[i];

		if (!byte)
			continue;
		if ((i + 1) * 8 > r->nres &&
		    (byte >> (r->nres > i * 8 ? r->nres - i * 8 : 0)))
			return -FS_E_CORRUPT;
		used += (unsigned)__builtin_popcount(byte);
	}
	if (used + r->nfree != r->nres)
		return -FS_E_CORRUPT;
	return 0;
}

void fs_rc_out(const struct fs_rc *r, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P32(b, struct fs_rc_disk, type, r->type);
	P32(b, struct fs_rc_disk, extent, r->extent);
	P32(b, struct fs_rc_disk, cluster, r->cluster);
	P32(b, struct fs_rc_disk, nres, r->nres);
	P32(b, struct fs_rc_disk, nfree, r->nfree);
	memcpy(b + FS_RC_HDR, r->bitmap, sizeof(r->bitmap));
	seal(b, FS_RC_MAGIC);
}

/* ---- file descriptor ------------------------------------------------------------ */

int fs_fd_in(const void *buf, struct fs_fd *f)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_FD_MAGIC);

	if (ret)
		return ret;
	memset(f, 0, sizeof(*f));
	f->minor = G16(b, struct fs_fd_disk, minor);
	f->self = G64(b, struct fs_fd_disk, self);
	f->gen = G64(b, struct fs_fd_disk, gen);
	f->type = b[offsetof(struct fs_fd_disk, type)];
	f->map = b[offsetof(struct fs_fd_disk, map)];
	f->unit = b[offsetof(struct fs_fd_disk, unit)];
	f->flags = b[offsetof(struct fs_fd_disk, flags)];
	f->mode = G32(b, struct fs_fd_disk, mode);
	f->nlink = G32(b, struct fs_fd_disk, nlink);
	f->uid = G32(b, struct fs_fd_disk, uid);
	f->gid = G32(b, struct fs_fd_disk, gid);
	f->size = G64(b, struct fs_fd_disk, size);
	f->atime = G64(b, struct fs_fd_disk, atime);
	f->mtime = G64(b, struct fs_fd_disk, mtime);
	f->ctime = G64(b, struct fs_fd_disk, ctime);
	f->btime = G64(b, struct fs_fd_disk, btime);
	f->alloc_bytes = G64(b, struct fs_fd_disk, alloc_bytes);
	f->parent = G64(b, struct fs_fd_disk, parent);
	if (f->map == FS_MAP_INLINE) {
		memcpy(f->inline_data, b + offsetof(struct fs_fd_disk, addr),
		       sizeof(f->inline_data));
	} else {
		for (unsigned i = 0; i < FS_FD_ADDRS; i++)
			f->addr[i] = g64(b + offsetof(struct fs_fd_disk, addr) + i * 8);
	}
	memcpy(f->rdm, b + offsetof(struct fs_fd_disk, rdm), FS_RDM_LEN);
	if (f->type > FS_T_RDM || f->map > FS_MAP_IND3 || f->unit > FS_UNIT_FB ||
	    fs_addr_type(f->self) != FS_R_FD ||
	    (f->map == FS_MAP_INLINE && f->size > FS_INLINE_MAX) ||
	    (f->unit == FS_UNIT_SB && f->map > FS_MAP_DIRECT))
		return -FS_E_CORRUPT;
	return 0;
}

void fs_fd_out(const struct fs_fd *f, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P64(b, struct fs_fd_disk, self, f->self);
	P64(b, struct fs_fd_disk, gen, f->gen);
	b[offsetof(struct fs_fd_disk, type)] = f->type;
	b[offsetof(struct fs_fd_disk, map)] = f->map;
	b[offsetof(struct fs_fd_disk, unit)] = f->unit;
	b[offsetof(struct fs_fd_disk, flags)] = f->flags;
	P32(b, struct fs_fd_disk, mode, f->mode);
	P32(b, struct fs_fd_disk, nlink, f->nlink);
	P32(b, struct fs_fd_disk, uid, f->uid);
	P32(b, struct fs_fd_disk, gid, f->gid);
	P64(b, struct fs_fd_disk, size, f->size);
	P64(b, struct fs_fd_disk, atime, f->atime);
	P64(b, struct fs_fd_disk, mtime, f->mtime);
	P64(b, struct fs_fd_disk, ctime, f->ctime);
	P64(b, struct fs_fd_disk, btime, f->btime);
	P64(b, struct fs_fd_disk, alloc_bytes, f->alloc_bytes);
	P64(b, struct fs_fd_disk, parent, f->parent);
	if (f->map == FS_MAP_INLINE) {
		memcpy(b + offsetof(struct fs_fd_disk, addr), f->inline_data,
		       FS_INLINE_MAX);
	} else {
		for (unsigned i = 0; i < FS_FD_ADDRS; i++)
			p64(b + offsetof(struct fs_fd_disk, addr) + i * 8, f->addr[i]);
	}
	memcpy(b + offsetof(struct fs_fd_disk, rdm), f->rdm, FS_RDM_LEN);
	seal(b, FS_FD_MAGIC);
}

/* ---- raw device mapping record ------------------------------------------------ */

int fs_rdm_in(const void *buf, struct fs_rdm *r)
{
	const unsigned char *b = buf;

#define RS(f) b + offsetof(struct fs_rdm_disk, f), sizeof(((struct fs_rdm_disk *)0)->f)
	if (g32(b) != FS_RDM_MAGIC)
		return -FS_E_BADMAGIC;
	if (mp_crc32c(0, b, FS_RDM_CRC_OFF) != g32(b + FS_RDM_CRC_OFF))
		return -FS_E_CHECKSUM;
	if (g16(b + 4) != FS_MAJOR)
		return -FS_E_VERSION;
	memset(r, 0, sizeof(*r));
	r->mode = G32(b, struct fs_rdm_disk, mode);
	r->id_kind = G32(b, struct fs_rdm_disk, id_kind);
	r->capacity = G64(b, struct fs_rdm_disk, capacity);
	r->sector = G32(b, struct fs_rdm_disk, sector);
	r->mtime_ns = G64(b, struct fs_rdm_disk, mtime_ns);
	get_str(r->id, sizeof(r->id), RS(id));
	get_str(r->serial, sizeof(r->serial), RS(serial));
	get_str(r->vendor, sizeof(r->vendor), RS(vendor));
	get_str(r->product, sizeof(r->product), RS(product));
	get_str(r->host, sizeof(r->host), RS(host));
	get_str(r->spec, sizeof(r->spec), RS(spec));
#undef RS
	if (r->mode < FS_RDM_VIRTUAL || r->mode > FS_RDM_PHYSICAL ||
	    r->id_kind < FS_RDM_ID_SCSI || r->id_kind > FS_RDM_ID_LOCAL ||
	    !r->id[0] || (r->sector != 512 && r->sector != 4096) ||
	    !r->capacity || r->capacity % r->sector)
		return -FS_E_CORRUPT;
	return 0;
}

void fs_rdm_out(const struct fs_rdm *r, void *buf)
{
	unsigned char *b = buf;

#define WS(f, v) put_str(b + offsetof(struct fs_rdm_disk, f), \
			 sizeof(((struct fs_rdm_disk *)0)->f), (v))
	memset(b, 0, FS_RDM_LEN);
	p32(b, FS_RDM_MAGIC);
	p16(b + 4, FS_MAJOR);
	p16(b + 6, FS_MINOR);
	P32(b, struct fs_rdm_disk, mode, r->mode);
	P32(b, struct fs_rdm_disk, id_kind, r->id_kind);
	P64(b, struct fs_rdm_disk, capacity, r->capacity);
	P32(b, struct fs_rdm_disk, sector, r->sector);
	P64(b, struct fs_rdm_disk, mtime_ns, r->mtime_ns);
	WS(id, r->id);
	WS(serial, r->serial);
	WS(vendor, r->vendor);
	WS(product, r->product);
	WS(host, r->host);
	WS(spec, r->spec);
#undef WS
	p32(b + FS_RDM_CRC_OFF, mp_crc32c(0, b, FS_RDM_CRC_OFF));
}

/* ---- pointer block -------------------------------------------------------------- */

int fs_pb_in(const void *buf, struct fs_pb *p)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_PB_MAGIC);

	if (ret)
		return ret;
	memset(p, 0, sizeof(*p));
	p->owner = G64(b, struct fs_pb_disk, owner);
	p->owner_gen = G64(b, struct fs_pb_disk, owner_gen);
	p->level = G32(b, struct fs_pb_disk, level);
	for (unsigned i = 0; i < FS_PB_ADDRS; i++)
		p->addr[i] = g64(b + offsetof(struct fs_pb_disk, addr) + i * 8);
	if (p->level < 1 || p->level > 3 || fs_addr_type(p->owner) != FS_R_FD)
		return -FS_E_CORRUPT;
	return 0;
}

void fs_pb_out(const struct fs_pb *p, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P64(b, struct fs_pb_disk, owner, p->owner);
	P64(b, struct fs_pb_disk, owner_gen, p->owner_gen);
	P32(b, struct fs_pb_disk, level, p->level);
	for (unsigned i = 0; i < FS_PB_ADDRS; i++)
		p64(b + offsetof(struct fs_pb_disk, addr) + i * 8, p->addr[i]);
	seal(b, FS_PB_MAGIC);
}

/* ---- directories -------------------------------------------------------------- */

int fs_dh_in(const void *buf, struct fs_dh *h)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_DH_MAGIC);

	if (ret)
		return ret;
	memset(h, 0, sizeof(*h));
	h->level = G32(b, struct fs_dh_disk, level);
	h->split = G32(b, struct fs_dh_disk, split);
	h->nbuckets = G64(b, struct fs_dh_disk, nbuckets);
	h->nentries = G64(b, struct fs_dh_disk, nentries);
	h->next_overflow = G64(b, struct fs_dh_disk, next_overflow);
	h->free_overflow = G64(b, struct fs_dh_disk, free_overflow);
	if (h->level > 28 || h->split >= (1u << h->level) ||
	    h->nbuckets != (1ull << h->level) + h->split)
		return -FS_E_CORRUPT;
	return 0;
}

void fs_dh_out(const struct fs_dh *h, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P32(b, struct fs_dh_disk, level, h->level);
	P32(b, struct fs_dh_disk, split, h->split);
	P64(b, struct fs_dh_disk, nbuckets, h->nbuckets);
	P64(b, struct fs_dh_disk, nentries, h->nentries);
	P64(b, struct fs_dh_disk, next_overflow, h->next_overflow);
	P64(b, struct fs_dh_disk, free_overflow, h->free_overflow);
	seal(b, FS_DH_MAGIC);
}

int fs_db_entry(const struct fs_db *d, unsigned pos, struct fs_dirent *de)
{
	const unsigned char *e = d->entries + pos;
	unsigned rec, nl;

	if (pos + FS_DE_HDR > d->used)
		return -1;
	rec = g16(e + 16);
	nl = e[18];
	if (nl == 0 || rec != fs_de_len(nl) || pos + rec > d->used)
		return -1;
	de->fd = g64(e);
	de->gen = g64(e + 8);
	de->name_len = (uint8_t)nl;
	de->type = e[19];
	memcpy(de->name, e + FS_DE_HDR, nl);
	de->name[nl] = 0;
	return (int)(pos + rec);
}

int fs_db_add(struct fs_db *d, const struct fs_dirent *de)
{
	unsigned rec = fs_de_len(de->name_len);
	unsigned char *e = d->entries + d->used;

	if (de->name_len == 0 || d->used + rec > FS_DB_SPACE)
		return -ENOSPC;
	memset(e, 0, rec);
	p64(e, de->fd);
	p64(e + 8, de->gen);
	p16(e + 16, (uint16_t)rec);
	e[18] = de->name_len;
	e[19] = de->type;
	memcpy(e + FS_DE_HDR, de->name, de->name_len);
	d->used = (uint16_t)(d->used + rec);
	d->nentries++;
	return 0;
}

void fs_db_del(struct fs_db *d, unsigned pos)
{
	unsigned rec = g16(d->entries + pos + 16);

	memmove(d->entries + pos, d->entries + pos + rec, d->used - pos - rec);
	d->used = (uint16_t)(d->used - rec);
	memset(d->entries + d->used, 0, rec);
	d->nentries--;
}

int fs_db_in(const void *buf, struct fs_db *d)
{
	const unsigned char *b = buf;
	struct fs_dirent de;
	unsigned n = 0;
	int pos = 0, ret = check(b, FS_DB_MAGIC);

	if (ret)
		return ret;
	memset(d, 0, sizeof(*d));
	d->bucket = G64(b, struct fs_db_disk, bucket);
	d->next = G64(b, struct fs_db_disk, next);
	d->nentries = G16(b, struct fs_db_disk, nentries);
	d->used = G16(b, struct fs_db_disk, used);
	if (d->used > FS_DB_SPACE)
		return -FS_E_CORRUPT;
	memcpy(d->entries, b + FS_DB_HDR, FS_DB_SPACE);
	/* every entry must parse, and the count must match */
	while (pos < d->used) {
		pos = fs_db_entry(d, (unsigned)pos, &de);
		if (pos < 0)
			return -FS_E_CORRUPT;
		n++;
	}
	if (n != d->nentries || (d->next && d->next < FS_DIR_OVERFLOW_BASE))
		return -FS_E_CORRUPT;
	return 0;
}

void fs_db_out(const struct fs_db *d, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P64(b, struct fs_db_disk, bucket, d->bucket);
	P64(b, struct fs_db_disk, next, d->next);
	P16(b, struct fs_db_disk, nentries, d->nentries);
	P16(b, struct fs_db_disk, used, d->used);
	memcpy(b + FS_DB_HDR, d->entries, d->used);
	seal(b, FS_DB_MAGIC);
}

/* ---- journal ------------------------------------------------------------------- */

int fs_jh_in(const void *buf, struct fs_jh *h)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_JH_MAGIC);

	if (ret)
		return ret;
	memset(h, 0, sizeof(*h));
	h->slot = G32(b, struct fs_jh_disk, slot);
	h->nblocks = G32(b, struct fs_jh_disk, nblocks);
	h->tail_seq = G64(b, struct fs_jh_disk, tail_seq);
	h->tail_block = G64(b, struct fs_jh_disk, tail_block);
	h->jid = G64(b, struct fs_jh_disk, jid);
	h->flags = G32(b, struct fs_jh_disk, flags);
	if (h->nblocks < 16 || h->tail_block == 0 || h->tail_block >= h->nblocks)
		return -FS_E_CORRUPT;
	return 0;
}

void fs_jh_out(const struct fs_jh *h, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	P32(b, struct fs_jh_disk, slot, h->slot);
	P32(b, struct fs_jh_disk, nblocks, h->nblocks);
	P64(b, struct fs_jh_disk, tail_seq, h->tail_seq);
	P64(b, struct fs_jh_disk, tail_block, h->tail_block);
	P64(b, struct fs_jh_disk, jid, h->jid);
	P32(b, struct fs_jh_disk, flags, h->flags);
	seal(b, FS_JH_MAGIC);
}

int fs_jd_in(const void *buf, struct fs_jd *d)
{
	const unsigned char *b = buf;
	const unsigned char *t, *l;
	int ret = check(b, FS_JD_MAGIC);

	if (ret)
		return ret;
	memset(d, 0, sizeof(*d));
	d->seq = g64(b + 8);
	d->nblocks = g32(b + 16);
	d->nlocks = g32(b + 20);
	d->jid = g64(b + 24);
	d->ntx = g32(b + FS_JD_NTX_OFF);
	if (d->ntx == 0)
		d->ntx = 1;             /* one transaction (older records) */
	if (d->nblocks == 0 || d->nblocks > FS_JD_MAX_BLOCKS ||
	    d->nlocks > FS_JD_MAX_LOCKS)
		return -FS_E_CORRUPT;
	t = b + 0x20;
	l = t + FS_JD_MAX_BLOCKS * 16;
	for (unsigned i = 0; i < d->nblocks; i++) {
		d->t[i].extent = g32(t + i * 16);
		d->t[i].off = g64(t + i * 16 + 8);
		if (d->t[i].extent >= FS_MAX_EXTENTS || d->t[i].off % 512)
			return -FS_E_CORRUPT;
	}
	for (unsigned i = 0; i < d->nlocks; i++) {
		d->l[i].extent = g32(l + i * 24);
		d->l[i].off = g64(l + i * 24 + 8);
		d->l[i].version = g64(l + i * 24 + 16);
		if (d->l[i].extent >= FS_MAX_EXTENTS || d->l[i].off % 512)
			return -FS_E_CORRUPT;
	}
	return 0;
}

void fs_jd_out(const struct fs_jd *d, void *buf)
{
	unsigned char *b = buf, *t, *l;

	memset(b, 0, FS_BLOCK);
	p64(b + 8, d->seq);
	p32(b + 16, d->nblocks);
	p32(b + 20, d->nlocks);
	p64(b + 24, d->jid);
	/* one: left 0, as a volume without groups has it */
	if (d->ntx > 1)
		p32(b + FS_JD_NTX_OFF, d->ntx);
	t = b + 0x20;
	l = t + FS_JD_MAX_BLOCKS * 16;
	for (unsigned i = 0; i < d->nblocks && i < FS_JD_MAX_BLOCKS; i++) {
		p32(t + i * 16, d->t[i].extent);
		p64(t + i * 16 + 8, d->t[i].off);
	}
	for (unsigned i = 0; i < d->nlocks && i < FS_JD_MAX_LOCKS; i++) {
		p32(l + i * 24, d->l[i].extent);
		p64(l + i * 24 + 8, d->l[i].off);
		p64(l + i * 24 + 16, d->l[i].version);
	}
	seal(b, FS_JD_MAGIC);
}

int fs_jc_in(const void *buf, struct fs_jc *c)
{
	const unsigned char *b = buf;
	int ret = check(b, FS_JC_MAGIC);

	if (ret)
		return ret;
	memset(c, 0, sizeof(*c));
	c->seq = g64(b + 8);
	c->nblocks = g32(b + 16);
	c->data_crc = g32(b + 20);
	c->jid = g64(b + 24);
	return 0;
}

void fs_jc_out(const struct fs_jc *c, void *buf)
{
	unsigned char *b = buf;

	memset(b, 0, FS_BLOCK);
	p64(b + 8, c->seq);
	p32(b + 16, c->nblocks);
	p32(b + 20, c->data_crc);
	p64(b + 24, c->jid);
	seal(b, FS_JC_MAGIC);
}
