#include "loader.h"

#include <dirent.h>
#include <glob.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checksum.h"
#include "err.h"
#include "rng.h"
#include "tokenizer.h"

// Fixed seed of validation noise: independent of --seed so that runs compare.
#define VAL_SEED 0x76616c6964617465ULL // "validate"
// Domain tags that keep the permutation and the document streams apart.
#define TAG_PERM 0x7065726dULL // "perm"
#define TAG_DOC 0x646f63ULL    // "doc"

struct mm_loader {
	mm_loader_opts o;
	mm_shard_info info; // of the first shard; n_docs = all shards
	int n_shards;
	mm_shard_reader **rd;
	uint64_t *start; // n_shards + 1: global index of each shard's first document
	uint32_t np, pd; // patches per image, values per patch
	uint64_t *perm;  // training: the permutation of epoch perm_epoch
	uint64_t perm_epoch;
	int perm_ok;
	mm_loader_state st;
	uint64_t padded, total;

	// The document at st (valid when have_doc).
	int have_doc;
	mm_doc doc;
	int shard;       // where it came from, for messages
	uint64_t local;
	uint32_t n_order, cap;
	uint32_t *order;     // segment indices in sequence order
	float *seg_t;        // per segment (images): noise level
	uint64_t *seg_seed;  // per segment (images): seed of its eps
	uint64_t len;        // positions of the whole sequence, BOS and EOS included
};

void mm_loader_opts_init(mm_loader_opts *o)
{
	memset(o, 0, sizeof *o);
	o->image_first = 0.2;
	o->cfg_drop = 0.1;
	o->first_t = MM_T_IMAGE_FIRST;
	o->t_mu = MM_T_MU;
	o->t_sigma = MM_T_SIGMA;
	o->world = 1;
	o->val_t = -1;
}

// ---- Pattern expansion ----

typedef struct path_list {
	char **v;
	size_t n, cap;
} path_list;

static int list_add(path_list *pl, const char *dir, const char *name)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 16;
		char **v = realloc(pl->v, cap * sizeof *v);
		if (!v)
			return mm_fail(MM_ENOMEM, "out of memory");
		pl->v = v, pl->cap = cap;
	}
	size_t nd = dir ? strlen(dir) : 0, nn = strlen(name);
	char *s = malloc(nd + nn + 2);
	if (!s)
		return mm_fail(MM_ENOMEM, "out of memory");
	size_t k = 0;
	if (dir) {
		memcpy(s, dir, nd);
		k = nd;
		if (nd && dir[nd - 1] != '/')
			s[k++] = '/';
	}
	memcpy(s + k, name, nn + 1);
	pl->v[pl->n++] = s;
	return 0;
}

static void list_free(path_list *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->v[i]);
	free(pl->v);
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// Adds dir's *.mms files (regular files only).
static int add_dir(path_list *pl, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return mm_fail(MM_EIO, "%s: cannot read directory", dir);
	size_t before = pl->n;
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n <= 4 || strcmp(e->d_name + n - 4, ".mms") != 0)
			continue;
		rc = list_add(pl, dir, e->d_name);
		if (!rc && is_dir(pl->v[pl->n - 1]))
			free(pl->v[--pl->n]);
	}
	closedir(d);
	if (!rc && pl->n == before)
		rc = mm_fail(MM_EINVAL, "%s: directory holds no .mms shard", dir);
	return rc;
}

static int add_pattern(path_list *pl, const char *pat)
{
	struct stat st;
	if (stat(pat, &st) == 0)
		return S_ISDIR(st.st_mode) ? add_dir(pl, pat) : list_add(pl, NULL, pat);
	glob_t g;
	int grc = glob(pat, 0, NULL, &g);
	if (grc == GLOB_NOMATCH)
		return mm_fail(MM_EINVAL, "%s: no shard matches this pattern", pat);
	if (grc != 0)
		return mm_fail(grc == GLOB_NOSPACE ? MM_ENOMEM : MM_EIO, "%s: cannot expand pattern", pat);
	int rc = 0;
	for (size_t i = 0; !rc && i < g.gl_pathc; i++)
		rc = is_dir(g.gl_pathv[i]) ? add_dir(pl, g.gl_pathv[i]) : list_add(pl, NULL, g.gl_pathv[i]);
	globfree(&g);
	return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int expand(path_list *pl, const char *const *patterns, int n)
{
	if (n <= 0)
		return mm_fail(MM_EINVAL, "no shard pattern given");
	for (int i = 0; i < n; i++) {
		int rc = add_pattern(pl, patterns[i]);
		if (rc)
			return rc;
	}
	qsort(pl->v, pl->n, sizeof *pl->v, cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < pl->n; i++) {
		if (k && strcmp(pl->v[k - 1], pl->v[i]) == 0)
			free(pl->v[i]);
		else
			pl->v[k++] = pl->v[i];
	}
	pl->n = k;
	return 0;
}

// ---- Open ----

static int check_geometry(mm_loader *l, const char *path)
{
	const mm_shard_info *in = &l->info;
	const mm_loader_opts *o = &l->o;
	if (in->vocab_size <= MM_TOK_EOI || in->vocab_size > INT32_MAX)
		return mm_fail(MM_EFORMAT, "%s: vocab size %u is out of range", path, in->vocab_size);
	if (!in->patch && !in->img_h && !in->img_w && !in->img_c)
		return 0;
	if (!in->patch || !in->img_h || !in->img_w || !in->img_c || in->img_h % in->patch ||
	    in->img_w % in->patch || in->img_c > 4 || in->patch > 4096 || in->img_h > 65536 || in->img_w > 65536)
		return mm_fail(MM_EFORMAT, "%s: bad image geometry %ux%ux%u with patch %u", path, in->img_h,
			       in->img_w, in->img_c, in->patch);
	uint64_t np = (uint64_t)(in->img_h / in->patch) * (in->img_w / in->patch);
	uint64_t pd = (uint64_t)in->patch * in->patch * in->img_c;
	if (np + 3 > (uint64_t)o->seq_len)
		return mm_fail(MM_ERANGE,
			       "%s: a %ux%u image in %ux%u patches takes %llu positions with BOS, BOI and EOI, "
			       "more than a row of %d",
			       path, in->img_h, in->img_w, in->patch, in->patch, (unsigned long long)(np + 3),
			       o->seq_len);
	l->np = (uint32_t)np;
	l->pd = (uint32_t)pd;
	return 0;
}

static int check_opts(const mm_loader_opts *o)
{
	if (o->batch < 1 || o->seq_len < 2)
		return mm_fail(MM_EINVAL, "loader: batch %d and sequence length %d must be at least 1 and 2",
			       o->batch, o->seq_len);
	if ((uint64_t)o->batch * (uint64_t)o->seq_len > (1ULL << 31))
		return mm_fail(MM_ERANGE, "loader: batch %d x sequence length %d is too large", o->batch,
			       o->seq_len);
	if (o->world < 1 || o->rank < 0 || o->rank >= o->world)
		return mm_fail(MM_EINVAL, "loader: rank %d of world %d", o->rank, o->world);
	if (!(o->image_first >= 0 && o->image_first <= 1) || !(o->cfg_drop >= 0 && o->cfg_drop <= 1))
		return mm_fail(MM_EINVAL, "loader: probabilities must lie in [0, 1] (image first %g, drop %g)",
			       o->image_first, o->cfg_drop);
	if (!(o->first_t >= 0 && o->first_t <= 1))
		return mm_fail(MM_EINVAL, "loader: the level of an image before its caption must lie in [0, 1], not %g",
			       o->first_t);
	if (!(o->val_t <= 1))
		return mm_fail(MM_EINVAL, "loader: fixed noise level %g is above 1", o->val_t);
	if (!isfinite(o->t_mu) || !isfinite(o->t_sigma) || o->t_sigma < 0)
		return mm_fail(MM_EINVAL, "loader: bad noise level distribution (mu %g, sigma %g)", o->t_mu,
			       o->t_sigma);
	return 0;
}

static int open_shards(mm_loader *l, path_list *pl)
{
	l->rd = calloc(pl->n, sizeof *l->rd);
	l->start = calloc(pl->n + 1, sizeof *l->start);
	if (!l->rd || !l->start)
		return mm_fail(MM_ENOMEM, "out of memory");
	for (size_t i = 0; i < pl->n; i++) {
		int rc = mm_shard_open(&l->rd[i], pl->v[i]);
		if (rc)
			return rc;
		l->n_shards++;
		const mm_shard_info *in = mm_shard_get_info(l->rd[i]);
		if (i == 0) {
			l->info = *in;
			if ((rc = check_geometry(l, pl->v[0])))
				return rc;
		} else if ((rc = mm_shard_info_compatible(&l->info, pl->v[0], in, pl->v[i]))) {
			return rc;
		}
		if (in->n_docs > UINT64_MAX / 2 - l->start[i])
			return mm_fail(MM_ERANGE, "%s: too many documents", pl->v[i]);
		l->start[i + 1] = l->start[i] + in->n_docs;
	}
	l->info.n_docs = l->start[l->n_shards];
	return 0;
}

int mm_loader_open(mm_loader **out, const char *const *patterns, int n_patterns, const mm_loader_opts *o)
{
	*out = NULL;
	int rc = check_opts(o);
	if (rc)
		return rc;
	mm_loader *l = calloc(1, sizeof *l);
	if (!l)
		return mm_fail(MM_ENOMEM, "out of memory");
	l->o = *o;
	mm_doc_init(&l->doc);
	path_list pl = {0};
	rc = expand(&pl, patterns, n_patterns);
	if (!rc)
		rc = open_shards(l, &pl);
	uint64_t n = l->info.n_docs;
	if (!rc && !o->validation && n < (uint64_t)o->world)
		rc = mm_fail(MM_EINVAL, "%s%s: %llu documents, fewer than the %d ranks need", pl.v[0],
			     pl.n > 1 ? " and the other shards" : "", (unsigned long long)n, o->world);
	if (!rc && !o->validation && n > SIZE_MAX / sizeof *l->perm)
		rc = mm_fail(MM_ENOMEM, "out of memory");
	if (!rc && !o->validation && !(l->perm = malloc(n * sizeof *l->perm)))
		rc = mm_fail(MM_ENOMEM, "out of memory");
	list_free(&pl);
	if (rc) {
		mm_loader_close(l);
		return rc;
	}
	mm_loader_rewind(l);
	*out = l;
	return 0;
}

void mm_loader_close(mm_loader *l)
{
	if (!l)
		return;
	for (int i = 0; i < l->n_shards; i++)
		mm_shard_close(l->rd[i]);
	free(l->rd);
	free(l->start);
	free(l->perm);
	mm_doc_free(&l->doc);
	free(l->order);
	free(l->seg_t);
	free(l->seg_seed);
	free(l);
}

const mm_shard_info *mm_loader_info(const mm_loader *l) { return &l->info; }
int mm_loader_n_shards(const mm_loader *l) { return l->n_shards; }
const char *mm_loader_shard_path(const mm_loader *l, int i) { return mm_shard_path(l->rd[i]); }
uint64_t mm_loader_docs_per_epoch(const mm_loader *l) { return l->info.n_docs; }

double mm_loader_epochs_done(const mm_loader *l)
{
	uint64_t n = l->info.n_docs;
	return (double)l->st.epoch + (n ? (double)(l->st.cursor < n ? l->st.cursor : n) / (double)n : 0);
}

double mm_loader_padding(const mm_loader *l, uint64_t *padded, uint64_t *total)
{
	if (padded)
		*padded = l->padded;
	if (total)
		*total = l->total;
	return l->total ? (double)l->padded / (double)l->total : 0;
}

void mm_loader_get_state(const mm_loader *l, mm_loader_state *s) { *s = l->st; }

int mm_loader_set_state(mm_loader *l, const mm_loader_state *s)
{
	uint64_t n = l->info.n_docs, w = (uint64_t)l->o.world;
	if ((s->epoch % w * (n % w) + s->cursor % w) % w != (uint64_t)l->o.rank || (!l->o.validation && s->cursor >= n) ||
	    (s->cursor >= n && s->offset))
		return mm_fail(MM_EINVAL,
			       "loader state (epoch %llu, document %llu, offset %llu) does not fit rank %d of %d "
			       "over %llu documents",
			       (unsigned long long)s->epoch, (unsigned long long)s->cursor,
			       (unsigned long long)s->offset, l->o.rank, l->o.world, (unsigned long long)n);
	l->st = *s;
	l->have_doc = 0;
	return 0;
}

void mm_loader_rewind(mm_loader *l)
{
	l->st.epoch = 0;
	l->st.cursor = (uint64_t)l->o.rank;
	l->st.offset = 0;
	l->have_doc = 0;
}

int mm_loader_batch_alloc(const mm_loader *l, mm_batch *b)
{
	return mm_batch_alloc(b, l->o.batch, l->o.seq_len, (int)l->pd);
}

// ---- Documents ----

static void make_perm(mm_loader *l, uint64_t epoch)
{
	uint64_t n = l->info.n_docs;
	mm_rng r;
	mm_rng_seed(&r, l->o.seed ^ TAG_PERM, epoch);
	for (uint64_t i = 0; i < n; i++)
		l->perm[i] = i;
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = mm_rng_below(&r, i);
		uint64_t tmp = l->perm[i - 1];
		l->perm[i - 1] = l->perm[j];
		l->perm[j] = tmp;
	}
	l->perm_epoch = epoch;
	l->perm_ok = 1;
}

static int find_shard(const mm_loader *l, uint64_t g)
{
	int lo = 0, hi = l->n_shards - 1; // the last shard whose start <= g
	while (lo < hi) {
		int mid = lo + (hi - lo + 1) / 2;
		if (l->start[mid] <= g)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static int grow_segs(mm_loader *l, uint32_t n)
{
	if (n <= l->cap)
		return 0;
	uint32_t *o = realloc(l->order, (size_t)n * sizeof *o);
	if (o)
		l->order = o;
	float *t = realloc(l->seg_t, (size_t)n * sizeof *t);
	if (t)
		l->seg_t = t;
	uint64_t *s = realloc(l->seg_seed, (size_t)n * sizeof *s);
	if (s)
		l->seg_seed = s;
	if (!o || !t || !s)
		return mm_fail(MM_ENOMEM, "out of memory");
	l->cap = n;
	return 0;
}

// A document must keep the promises of its shard's header: the model indexes tables with
// token ids and sizes its patch arrays from the geometry.
static int check_doc(const mm_loader *l, const mm_doc *d, uint64_t local, const char *path)
{
	const mm_shard_info *in = &l->info;
	for (uint32_t i = 0; i < d->n_segs; i++) {
		const mm_segment *s = &d->segs[i];
		if (s->type == MM_SEG_TEXT) {
			for (uint32_t j = 0; j < s->n_tokens; j++)
				if (s->tokens[j] >= in->vocab_size)
					return mm_fail(MM_EFORMAT, "%s: document %llu: token %u >= vocab size %u", path,
						       (unsigned long long)local, s->tokens[j], in->vocab_size);
		} else if (s->type == MM_SEG_IMAGE) {
			if (!l->np || s->h != in->img_h || s->w != in->img_w || s->c != in->img_c || s->p != in->patch)
				return mm_fail(MM_EFORMAT,
					       "%s: document %llu: image %ux%ux%u patch %u, the shard promises "
					       "%ux%ux%u patch %u",
					       path, (unsigned long long)local, s->h, s->w, s->c, s->p, in->img_h,
					       in->img_w, in->img_c, in->patch);
		} else {
			return mm_fail(MM_EFORMAT, "%s: document %llu: segment %u of unknown type %u", path,
				       (unsigned long long)local, i, s->type);
		}
	}
	return 0;
}

// Reads global document g (at permutation position p) and draws its choices: every draw comes
// from a generator seeded by (seed, epoch, p), in the same order whatever the document holds.
static int load_doc(mm_loader *l, uint64_t g, uint64_t p)
{
	int s = find_shard(l, g);
	l->shard = s;
	l->local = g - l->start[s];
	const char *path = mm_shard_path(l->rd[s]);
	int rc = mm_shard_read(l->rd[s], l->local, &l->doc);
	if (!rc)
		rc = check_doc(l, &l->doc, l->local, path);
	if (!rc)
		rc = grow_segs(l, l->doc.n_segs ? l->doc.n_segs : 1);
	if (rc)
		return rc;
	const mm_doc *d = &l->doc;
	mm_rng r;
	if (l->o.validation)
		mm_rng_seed(&r, VAL_SEED, g);
	else
		mm_rng_seed(&r, l->o.seed ^ mm_mix64(l->st.epoch ^ TAG_DOC), p);
	double u_drop = mm_rng_uniform(&r), u_first = mm_rng_uniform(&r);
	int ti = -1, ii = -1;
	for (uint32_t i = 0; i < d->n_segs; i++) {
		if (d->segs[i].type == MM_SEG_IMAGE) {
			double n = mm_rng_normal(&r);
			l->seg_t[i] = (float)(1.0 / (1.0 + exp(-(l->o.t_mu + l->o.t_sigma * n))));
			if (l->o.validation && l->o.val_t >= 0)
				l->seg_t[i] = (float)l->o.val_t;
			l->seg_seed[i] = mm_rng_u64(&r);
			ii = (int)i;
		} else {
			ti = (int)i;
		}
		l->order[i] = i;
	}
	l->n_order = d->n_segs;
	if (d->n_segs == 2 && ti >= 0 && ii >= 0 && d->segs[ti].n_tokens > 0) {
		int drop = !l->o.validation && u_drop < l->o.cfg_drop;
		int img_first = !l->o.validation && !drop && u_first < l->o.image_first;
		if (drop) {
			l->order[0] = (uint32_t)ii;
			l->n_order = 1;
		} else {
			l->order[0] = (uint32_t)(img_first ? ii : ti);
			l->order[1] = (uint32_t)(img_first ? ti : ii);
		}
		if (img_first) { // Mapped, not clamped: a clamp would put most of the mass at first_t.
			float lo = (float)l->o.first_t;
			l->seg_t[ii] = lo + (1 - lo) * l->seg_t[ii];
		}
	}
	l->len = 2;
	for (uint32_t k = 0; k < l->n_order; k++) {
		const mm_segment *sg = &d->segs[l->order[k]];
		l->len += sg->type == MM_SEG_TEXT ? sg->n_tokens : (uint64_t)l->np + 2;
	}
	if (l->st.offset >= l->len)
		return mm_fail(MM_EINVAL, "%s: document %llu: loader state offset %llu is beyond its %llu positions",
			       path, (unsigned long long)l->local, (unsigned long long)l->st.offset,
			       (unsigned long long)l->len);
	return 0;
}

int mm_loader_read(mm_loader *l, uint64_t g, mm_doc *doc)
{
	if (g >= l->info.n_docs)
		return mm_fail(MM_EINVAL, "loader: document %llu of %llu", (unsigned long long)g,
			       (unsigned long long)l->info.n_docs);
	int s = find_shard(l, g);
	uint64_t local = g - l->start[s];
	const char *path = mm_shard_path(l->rd[s]);
	int rc = mm_shard_read(l->rd[s], local, doc);
	return rc ? rc : check_doc(l, doc, local, path);
}

// Makes the document at the state current. Returns 1, 0 at the end of a validation pass, or
// an error.
static int current(mm_loader *l)
{
	if (l->have_doc)
		return 1;
	uint64_t n = l->info.n_docs;
	if (l->o.validation && l->o.max_docs && l->o.max_docs < n)
		n = l->o.max_docs;
	if (l->st.cursor >= n)
		return 0; // only in validation: training rolls over in advance()
	uint64_t g = l->st.cursor;
	if (!l->o.validation) {
		if (!l->perm_ok || l->perm_epoch != l->st.epoch)
			make_perm(l, l->st.epoch);
		g = l->perm[l->st.cursor];
	}
	int rc = load_doc(l, g, l->st.cursor);
	if (rc)
		return rc;
	l->have_doc = 1;
	return 1;
}

static void advance(mm_loader *l)
{
	l->have_doc = 0;
	l->st.offset = 0;
	l->st.cursor += (uint64_t)l->o.world;
	if (!l->o.validation && l->st.cursor >= l->info.n_docs) {
		// The stride goes on into the next epoch (loader.h); n_docs >= world keeps it inside.
		l->st.epoch++;
		l->st.cursor -= l->info.n_docs;
	}
}

// The end of a piece that starts at s and may run to e = s + T (< len): e itself, or the BOI
// of an image that e would split. T >= NP + 3 makes the piece at least 2 positions long: an
// image that starts at s or s + 1 ends before e.
static uint64_t cut_point(const mm_loader *l, uint64_t e)
{
	uint64_t q = 1;
	for (uint32_t k = 0; k < l->n_order && q < e; k++) {
		const mm_segment *sg = &l->doc.segs[l->order[k]];
		if (sg->type == MM_SEG_TEXT) {
			q += sg->n_tokens;
		} else {
			uint64_t span = (uint64_t)l->np + 2;
			if (q < e && e < q + span)
				return q;
			q += span;
		}
	}
	return e;
}

// ---- Packing ----

typedef struct row_ctx {
	mm_batch *b;
	size_t base; // index of the piece's first position in the batch
	uint64_t s, e;
	int32_t doc;
	int32_t *img; // the row's image counter
} row_ctx;

static void put_text(row_ctx *c, uint64_t q, int32_t tok)
{
	mm_batch_put_text(c->b, c->base + (size_t)(q - c->s), tok, c->doc, (int32_t)(q - c->s));
}

// Image at sequence positions q..q+NP+1 (BOI, patches, EOI), wholly inside the piece.
static void put_image(const mm_loader *l, row_ctx *c, uint64_t q, const mm_segment *sg, uint32_t si)
{
	put_text(c, q, MM_TOK_BOI);
	put_text(c, q + l->np + 1, MM_TOK_EOI);
	mm_rng r;
	mm_rng_seed(&r, l->seg_seed[si], 0);
	int32_t pos = (int32_t)(q + 1 - c->s); // of the first patch
	mm_batch_put_image(c->b, c->base + (size_t)pos, (int)l->np, (int)l->pd, sg->pixels, l->seg_t[si], c->doc,
			   pos, (*c->img)++, &r);
}

// Writes sequence positions [s, e) of the current document into the batch at index base.
static void emit(mm_loader *l, mm_batch *b, size_t base, uint64_t s, uint64_t e, int32_t doc, int32_t *img)
{
	row_ctx c = {b, base, s, e, doc, img};
	if (s == 0)
		put_text(&c, 0, MM_TOK_BOS);
	uint64_t q = 1;
	for (uint32_t k = 0; k < l->n_order && q < e; k++) {
		uint32_t si = l->order[k];
		const mm_segment *sg = &l->doc.segs[si];
		if (sg->type == MM_SEG_TEXT) {
			uint64_t a = q > s ? q : s, z = q + sg->n_tokens < e ? q + sg->n_tokens : e;
			for (uint64_t p = a; p < z; p++)
				put_text(&c, p, (int32_t)sg->tokens[p - q]);
			q += sg->n_tokens;
		} else {
			if (q >= s) // cut_point keeps images whole: inside [s, e) or out of it
				put_image(l, &c, q, sg, si);
			q += (uint64_t)l->np + 2;
		}
	}
	if (e == l->len)
		put_text(&c, l->len - 1, MM_TOK_EOS);
}

int mm_loader_next(mm_loader *l, mm_batch *b)
{
	if (b->B != l->o.batch || b->T != l->o.seq_len)
		return mm_fail(MM_EINVAL, "loader: batch of %d x %d, expected %d x %d", b->B, b->T, l->o.batch,
			       l->o.seq_len);
	mm_loader_state saved = l->st;
	uint64_t T = (uint64_t)b->T;
	mm_batch_clear(b, (int)l->pd);
	int row = 0, rc = 0;
	uint64_t col = 0;
	int32_t piece = 0, img = 0;
	while (row < b->B) {
		rc = current(l);
		if (rc <= 0)
			break;
		uint64_t off = l->st.offset, rest = l->len - off;
		size_t base = (size_t)row * T + col;
		if (rest <= T - col) {
			emit(l, b, base, off, l->len, piece++, &img);
			col += rest;
			advance(l);
		} else if (col > 0) {
			col = T; // does not fit: the rest of the row is padding
		} else {
			uint64_t cut = cut_point(l, off + T);
			emit(l, b, base, off, cut, piece++, &img);
			col = T;
			l->st.offset = cut;
			if (l->len - cut == 1) // a lone EOS would have no target: dropped
				advance(l);
		}
		if (col == T) {
			row++;
			col = 0;
			piece = img = 0;
		}
	}
	if (rc < 0) {
		l->st = saved;
		l->have_doc = 0;
		return rc;
	}
	mm_batch_set_targets(b);
	size_t bt = (size_t)b->B * (size_t)b->T;
	uint64_t pad = 0;
	for (size_t i = 0; i < bt; i++)
		pad += b->doc[i] < 0;
	int used = row + (col > 0);
	if (used) {
		l->padded += pad;
		l->total += bt;
	}
	return used;
}

void mm_loader_set_noise(mm_loader *l, double mu, double sigma)
{
	l->o.t_mu = mu;
	l->o.t_sigma = sigma;
}
