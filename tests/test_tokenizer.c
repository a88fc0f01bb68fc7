// Byte-level BPE: chunking, encoding and training against naive references written here from
// the rules in man/mm-tokenizer.5, round trips, the file format and its corruptions.
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mm.h"
#include "tok_rules_priv.h"

// ---- naive references ----

enum { L, D, W, S };
static int ref_class(uint8_t c)
{
	if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return L;
	if (c >= '0' && c <= '9')
		return D;
	if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
		return W;
	return S;
}

// The chunk rule as the man page states it: natural chunk, then cut at 256.
static size_t ref_chunk(const uint8_t *s, size_t n)
{
	size_t e = 1;
	if (s[0] == ' ' && n > 1 && (ref_class(s[1]) == L || ref_class(s[1]) == S)) {
		for (e = 2; e < n && ref_class(s[e]) == ref_class(s[1]); e++)
			;
	} else if (ref_class(s[0]) != W) {
		while (e < n && ref_class(s[e]) == ref_class(s[0]))
			e++;
	} else {
		while (e < n && ref_class(s[e]) == W)
			e++;
		if (e >= 2 && s[e - 1] == ' ' && e < n && (ref_class(s[e]) == L || ref_class(s[e]) == S))
			e--;
	}
	return e < 256 ? e : 256;
}

typedef struct {
	uint32_t n;
	uint32_t *m; // (left, right) pairs
} merge_list;

static merge_list merges_of(const mm_tokenizer *t)
{
	uint8_t *buf;
	size_t n;
	merge_list ml = {0};
	if (mm_tok_serialize(t, &buf, &n) != 0)
		return ml;
	ml.n = mm_get_u32(buf + 36);
	ml.m = malloc(8 * (size_t)ml.n + 8);
	for (uint32_t i = 0; i < 2 * ml.n; i++)
		ml.m[i] = mm_get_u32(buf + 64 + 4 * i);
	free(buf);
	return ml;
}

// Applies every merge, in order, to the whole chunk, left to right.
static size_t ref_encode_chunk(const merge_list *ml, const uint8_t *s, size_t len, uint32_t *out)
{
	for (size_t i = 0; i < len; i++)
		out[i] = s[i];
	for (uint32_t k = 0; k < ml->n && len > 1; k++) {
		size_t j = 0;
		for (size_t i = 0; i < len;) {
			if (i + 1 < len && out[i] == ml->m[2 * k] && out[i + 1] == ml->m[2 * k + 1]) {
				out[j++] = 261 + k;
				i += 2;
			} else {
				out[j++] = out[i++];
			}
		}
		len = j;
	}
	return len;
}

static size_t ref_encode(const merge_list *ml, const uint8_t *s, size_t n, uint32_t *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		size_t len = ref_chunk(s + i, n - i);
		k += ref_encode_chunk(ml, s + i, len, out + k);
		i += len;
	}
	return k;
}

// Training by recounting every pair before every merge.
typedef struct {
	uint32_t l, r;
	int64_t c;
} pc;

static int pc_cmp(const void *a, const void *b)
{
	const pc *x = a, *y = b;
	if (x->l != y->l)
		return x->l < y->l ? -1 : 1;
	return x->r < y->r ? -1 : x->r > y->r;
}

static merge_list ref_train(const uint8_t *s, size_t n, uint32_t max_merges)
{
	// Every chunk is a word with weight 1: the same counts as merging duplicates.
	uint32_t *sym = malloc(4 * n + 4);
	size_t *woff = malloc(sizeof(size_t) * (n + 1)), *wlen = malloc(sizeof(size_t) * (n + 1)), nw = 0;
	for (size_t i = 0; i < n;) {
		size_t len = ref_chunk(s + i, n - i);
		woff[nw] = i;
		wlen[nw++] = len;
		for (size_t j = 0; j < len; j++)
			sym[i + j] = s[i + j];
		i += len;
	}
	merge_list ml = {0, malloc(8 * (size_t)max_merges + 8)};
	pc *all = malloc(sizeof(pc) * (n + 1));
	while (ml.n < max_merges) {
		size_t np = 0;
		for (size_t w = 0; w < nw; w++)
			for (size_t i = 0; i + 1 < wlen[w]; i++)
				all[np++] = (pc){sym[woff[w] + i], sym[woff[w] + i + 1], 1};
		qsort(all, np, sizeof(pc), pc_cmp);
		pc best = {0, 0, 0};
		for (size_t i = 0; i < np;) {
			size_t j = i;
			int64_t c = 0;
			while (j < np && all[j].l == all[i].l && all[j].r == all[i].r)
				c += all[j++].c;
			if (c > best.c) // sorted by (l, r): the first of equal counts wins
				best = (pc){all[i].l, all[i].r, c};
			i = j;
		}
		if (best.c < 2)
			break;
		uint32_t x = 261 + ml.n;
		ml.m[2 * ml.n] = best.l;
		ml.m[2 * ml.n + 1] = best.r;
		ml.n++;
		for (size_t w = 0; w < nw; w++) {
			uint32_t *p = sym + woff[w];
			size_t j = 0;
			for (size_t i = 0; i < wlen[w];) {
				if (i + 1 < wlen[w] && p[i] == best.l && p[i + 1] == best.r) {
					p[j++] = x;
					i += 2;
				} else {
					p[j++] = p[i++];
				}
			}
			wlen[w] = j;
		}
	}
	free(all);
	free(sym);
	free(woff);
	free(wlen);
	return ml;
}

// ---- corpora ----

static const char *const utf8_snippets[] = {
	"Grüße aus Köln, schöne Straße!",
	"Ça va très bien, merci. Où est la bibliothèque ?",
	"Москва — столица России; 12 миллионов жителей.",
	"東京都は日本の首都です。人口は約1400万人。",
	"안녕하세요, 세계! 반갑습니다.",
	"مرحبا بالعالم، كيف حالك؟",
	"שלום עולם",
	"नमस्ते दुनिया, आप कैसे हैं?",
	"Emoji: 😀🎉👩‍👩‍👧‍👦 🇫🇷 ❤️ 1️⃣ done.",
	"Ελληνικά: καλημέρα κόσμε",
	"mixed\ttabs\r\nand  double  spaces   here\n\n\n  indented line",
};

static const char *const words[] = {
	"the", "and", "of", "lord", "said", "unto", "them", "there", "then", "that", "this",
	"is", "it", "in", "into", "aaaa", "aaab", "ab", "ba", "abab", "Grüße", "Straße", "東京",
	"😀", "x1", "42", "2024", "...", "--", "!?", "(see)", "naïve", "über", "hello", "help",
};

// Pseudo-text from a small vocabulary, with the separators that exercise every chunk rule.
static size_t make_corpus(uint8_t *buf, size_t cap, uint64_t seed)
{
	static const char *const seps[] = {" ", " ", " ", "  ", ", ", ". ", "\n", "\n\n", "\t", " - ", ": ", "\r\n "};
	mm_rng r;
	mm_rng_seed(&r, seed, 0);
	size_t n = 0;
	for (;;) {
		const char *w = words[mm_rng_below(&r, sizeof words / sizeof *words)];
		const char *s = seps[mm_rng_below(&r, sizeof seps / sizeof *seps)];
		char made[16];
		if (mm_rng_below(&r, 2)) { // a made-up word over few letters: many pairs, many ties
			size_t len = 1 + mm_rng_below(&r, 8);
			for (size_t i = 0; i < len; i++)
				made[i] = "abcdeé"[mm_rng_below(&r, 7)];
			made[len] = 0;
			w = made;
		}
		size_t a = strlen(w), b = strlen(s);
		if (n + a + b > cap)
			return n;
		memcpy(buf + n, w, a);
		memcpy(buf + n + a, s, b);
		n += a + b;
	}
}

static mm_tokenizer *train_on(const uint8_t *s, size_t n, uint32_t vocab)
{
	mm_bpe_trainer *tr;
	mm_tokenizer *t = NULL;
	CHECK_OK(mm_bpe_trainer_new(&tr));
	CHECK_OK(mm_bpe_trainer_feed(tr, s, n));
	CHECK_OK(mm_bpe_trainer_finish(tr, vocab, &t));
	mm_bpe_trainer_free(tr);
	return t;
}

// ---- tests ----

static void test_chunking(void)
{
	// Named cases, then random text made of the bytes that matter to the rule.
	static const struct {
		const char *in, *out; // out: chunks separated by '|'
	} cases[] = {
		{"Hello world", "Hello| world"},
		{"  hello", " | hello"},
		{"\n hello", "\n| hello"},
		{"\nhello", "\n|hello"},
		{"a  1", "a|  |1"},
		{"x = 12.5;", "x| =| |12|.|5|;"},
		{"don't stop!!", "don|'|t| stop|!!"},
		{"über  straße", "über| | straße"},
		{"end \n", "end| \n"},
		{"a \t b", "a| \t| b"},
		{"Hello  world, 42!\n", "Hello| | world|,| |42|!|\n"}, // the man page's example
	};
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		const uint8_t *s = (const uint8_t *)cases[c].in;
		size_t n = strlen(cases[c].in), at = 0;
		char got[64] = {0};
		for (size_t i = 0; i < n;) {
			size_t len = mm_tok_chunk(s + i, n - i);
			if (i)
				got[at++] = '|';
			memcpy(got + at, s + i, len);
			at += len;
			i += len;
		}
		CHECK_MSG(strcmp(got, cases[c].out) == 0, "\"%s\" chunked as \"%s\"", cases[c].in, got);
	}
	static const uint8_t alphabet[] = {' ', ' ', ' ', '\n', '\t', 'a', 'b', 0xc3, '1', '.', '!', 0};
	mm_rng r;
	mm_rng_seed(&r, 7, 0);
	uint8_t buf[2000];
	int same = 1;
	for (int iter = 0; iter < 300; iter++) {
		size_t n = mm_rng_below(&r, sizeof buf);
		int run = (int)mm_rng_below(&r, 3); // long runs reach the 256-byte cut
		for (size_t i = 0; i < n; i++)
			buf[i] = (run && i > 0 && mm_rng_below(&r, 400) != 0) ? buf[i - 1]
										: alphabet[mm_rng_below(&r, sizeof alphabet)];
		for (size_t i = 0; i < n;) {
			size_t a = mm_tok_chunk(buf + i, n - i), b = ref_chunk(buf + i, n - i);
			same &= a == b;
			i += b;
		}
	}
	CHECK(same);
}

static void test_hand_corpus(void)
{
	// Pairs: (a,a) 5, (a,b) 3, (' ',a) 2 -> (a,a)=261; then (' ',261), (a,b), (261,a) all 2, the
	// smallest ids win -> (' ',261)=262; then (a,b)=263; then every pair is seen once: stop.
	const char *text = "aaab aaab aab";
	mm_tokenizer *t = train_on((const uint8_t *)text, strlen(text), 1000);
	if (!t)
		return;
	CHECK_EQ_INT(mm_tok_vocab_size(t), 264);
	merge_list ml = merges_of(t);
	uint32_t want[] = {'a', 'a', ' ', 261, 'a', 'b'};
	CHECK(ml.n == 3 && memcmp(ml.m, want, sizeof want) == 0);
	free(ml.m);
	static const struct {
		const char *in;
		uint32_t ids[4];
		size_t n;
	} enc[] = {
		{"aaab", {261, 263}, 2},
		{" aab", {262, 'b'}, 2},
		{"aaaa", {261, 261}, 2},
		{"aaa", {261, 'a'}, 2},
		{" aaaa", {262, 261}, 2},
		{"ab ab", {263, ' ', 263}, 3},
	};
	uint32_t *ids = NULL;
	size_t cap = 0, n;
	for (size_t c = 0; c < sizeof enc / sizeof *enc; c++) {
		CHECK_OK(mm_tok_encode(t, (const uint8_t *)enc[c].in, strlen(enc[c].in), &ids, &cap, &n));
		CHECK_MSG(n == enc[c].n && memcmp(ids, enc[c].ids, n * 4) == 0, "encoding \"%s\"", enc[c].in);
	}
	size_t len;
	const uint8_t *p = mm_tok_piece(t, 262, &len);
	CHECK(len == 3 && memcmp(p, " aa", 3) == 0);
	CHECK(mm_tok_piece(t, MM_TOK_BOS, &len) != NULL && len == 0);
	CHECK(mm_tok_piece(t, 264, &len) == NULL);
	free(ids);
	mm_tok_free(t);
}

// Incremental training gives exactly the merges of a full recount per merge.
static void test_train_vs_naive(void)
{
	static uint8_t buf[40000];
	for (uint64_t seed = 1; seed <= 3; seed++) {
		size_t n = make_corpus(buf, seed == 3 ? 3000 : sizeof buf, seed);
		mm_tokenizer *t = train_on(buf, n, 261 + 400);
		if (!t)
			return;
		merge_list got = merges_of(t), want = ref_train(buf, n, 400);
		CHECK_MSG(got.n == want.n, "seed %llu: %u merges, naive %u", (unsigned long long)seed, got.n, want.n);
		uint32_t first_diff = 0;
		while (first_diff < got.n && first_diff < want.n &&
		       got.m[2 * first_diff] == want.m[2 * first_diff] &&
		       got.m[2 * first_diff + 1] == want.m[2 * first_diff + 1])
			first_diff++;
		CHECK_MSG(first_diff == got.n && first_diff == want.n, "seed %llu: merges differ from %u on",
			  (unsigned long long)seed, first_diff);
		free(got.m);
		free(want.m);
		mm_tok_free(t);
	}
}

static void test_deterministic(void)
{
	static uint8_t buf[30000];
	size_t n = make_corpus(buf, sizeof buf, 11);
	mm_tokenizer *a = train_on(buf, n, 700), *b = NULL;
	// The same text fed in two pieces cut at a chunk boundary counts the same chunks.
	mm_bpe_trainer *tr;
	CHECK_OK(mm_bpe_trainer_new(&tr));
	size_t half = 0;
	while (half < n / 2)
		half += mm_tok_chunk(buf + half, n - half);
	CHECK_OK(mm_bpe_trainer_feed(tr, buf, half));
	CHECK_OK(mm_bpe_trainer_feed(tr, buf + half, n - half));
	CHECK_OK(mm_bpe_trainer_finish(tr, 700, &b));
	mm_bpe_trainer_free(tr);
	if (!a || !b)
		return;
	uint8_t *fa, *fb;
	size_t na, nb;
	CHECK_OK(mm_tok_serialize(a, &fa, &na));
	CHECK_OK(mm_tok_serialize(b, &fb, &nb));
	CHECK(na == nb && memcmp(fa, fb, na) == 0);
	CHECK(mm_tok_hash(a) == mm_tok_hash(b));
	// The identity is the hash of the file from offset 40 to the CRC (man/mm-tokenizer.5).
	CHECK(mm_tok_hash(a) == mm_hash64(MM_HASH64_INIT, fa + 40, na - 44));
	mm_tokenizer *bytes;
	CHECK_OK(mm_tok_new_bytes(&bytes));
	CHECK(mm_tok_hash(a) != mm_tok_hash(bytes));
	CHECK_EQ_INT(mm_tok_vocab_size(bytes), 261);
	mm_tok_free(bytes);
	free(fa);
	free(fb);
	mm_tok_free(a);
	mm_tok_free(b);
}

static int round_trips(const mm_tokenizer *t, const uint8_t *s, size_t n)
{
	uint32_t *ids = NULL;
	uint8_t *out = NULL;
	size_t icap = 0, ocap = 0, ni = 0, no = 0;
	int ok = mm_tok_encode(t, s, n, &ids, &icap, &ni) == 0 && mm_tok_decode(t, ids, ni, &out, &ocap, &no) == 0 &&
		 no == n && memcmp(out, s, n) == 0;
	// And the tokens are the ones of the naive encoder.
	merge_list ml = merges_of(t);
	uint32_t *want = malloc(4 * n + 4);
	ok &= ref_encode(&ml, s, n, want) == ni && memcmp(want, ids, 4 * ni) == 0;
	free(want);
	free(ml.m);
	free(ids);
	free(out);
	return ok;
}

static void test_round_trip(void)
{
	static uint8_t buf[20000];
	size_t n = make_corpus(buf, sizeof buf, 5);
	for (size_t i = 0; i < sizeof utf8_snippets / sizeof *utf8_snippets && n < sizeof buf - 200; i++) {
		size_t k = strlen(utf8_snippets[i]);
		memcpy(buf + n, utf8_snippets[i], k);
		n += k;
	}
	mm_tokenizer *t = train_on(buf, n, 261 + 300);
	if (!t)
		return;
	CHECK(round_trips(t, buf, n));
	for (size_t i = 0; i < sizeof utf8_snippets / sizeof *utf8_snippets; i++)
		CHECK_MSG(round_trips(t, (const uint8_t *)utf8_snippets[i], strlen(utf8_snippets[i])), "snippet %zu", i);
	mm_rng r;
	mm_rng_seed(&r, 3, 0);
	int ok = 1;
	uint8_t rnd[5000];
	for (int iter = 0; iter < 200; iter++) {
		size_t len = iter == 0 ? 0 : mm_rng_below(&r, iter < 100 ? 64 : sizeof rnd);
		for (size_t i = 0; i < len; i++) // all byte values; half the strings lean on 'a' and space
			rnd[i] = iter % 2 && mm_rng_below(&r, 2) ? "a b"[mm_rng_below(&r, 3)] : (uint8_t)mm_rng_u64(&r);
		ok &= round_trips(t, rnd, len);
	}
	CHECK(ok);
	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	CHECK(round_trips(t, all, 256));
	mm_tok_free(t);
}

// Chunks are cut at 256 bytes: no token spans a multiple of 256 in one long run.
static void test_chunk_cap(void)
{
	static uint8_t buf[8 * 1600];
	size_t n = 0;
	for (int rep = 0; rep < 8; rep++) {
		memset(buf + n, 'a', 700), n += 700;
		memset(buf + n, ' ', 600), n += 600;
		memset(buf + n, '!', 300), n += 300;
	}
	mm_tokenizer *t = train_on(buf, n, 261 + 40);
	if (!t)
		return;
	CHECK(mm_tok_vocab_size(t) > 261 + 8); // pieces of 2, 4, ... 256 a's at least
	CHECK(round_trips(t, buf, n));
	uint32_t *ids = NULL;
	size_t cap = 0, ni;
	uint8_t run[1000];
	memset(run, 'a', sizeof run);
	CHECK_OK(mm_tok_encode(t, run, sizeof run, &ids, &cap, &ni));
	size_t at = 0, crossed = 0, maxlen = 0;
	for (size_t i = 0; i < ni; i++) {
		size_t len;
		mm_tok_piece(t, ids[i], &len);
		crossed += at / 256 != (at + len - 1) / 256;
		at += len;
		maxlen = len > maxlen ? len : maxlen;
	}
	CHECK(at == sizeof run && crossed == 0 && maxlen == 256);
	free(ids);
	mm_tok_free(t);
}

static void test_vocab_limits(void)
{
	const char *text = "abab abab";
	mm_bpe_trainer *tr;
	mm_tokenizer *t = NULL;
	CHECK_OK(mm_bpe_trainer_new(&tr));
	CHECK_OK(mm_bpe_trainer_feed(tr, (const uint8_t *)text, strlen(text)));
	CHECK_EQ_INT(mm_bpe_trainer_finish(tr, 260, &t), -MM_EINVAL);
	CHECK(t == NULL && strstr(mm_errmsg(), "260") != NULL);
	CHECK_EQ_INT(mm_bpe_trainer_finish(tr, 0, &t), -MM_EINVAL);
	CHECK_OK(mm_bpe_trainer_finish(tr, 261, &t)); // no merges: plain bytes
	CHECK(t && mm_tok_vocab_size(t) == 261);
	mm_tok_free(t);
	CHECK_OK(mm_bpe_trainer_finish(tr, 262, &t));
	CHECK(t && mm_tok_vocab_size(t) == 262);
	mm_tok_free(t);
	// Asking for more than the text supports stops when no pair is seen twice.
	CHECK_OK(mm_bpe_trainer_finish(tr, 100000, &t));
	CHECK(t && mm_tok_vocab_size(t) < 270);
	mm_tok_free(t);
	mm_bpe_trainer_free(tr);
	// No text at all.
	CHECK_OK(mm_bpe_trainer_new(&tr));
	CHECK_OK(mm_bpe_trainer_finish(tr, 4096, &t));
	CHECK(t && mm_tok_vocab_size(t) == 261);
	mm_tok_free(t);
	mm_bpe_trainer_free(tr);
}

static void test_decode(void)
{
	mm_tokenizer *t;
	CHECK_OK(mm_tok_new_bytes(&t));
	uint32_t ids[] = {'h', MM_TOK_BOS, 'i', MM_TOK_EOS, MM_TOK_BOI, MM_TOK_EOI, MM_TOK_PAD};
	uint8_t *out = NULL;
	size_t cap = 0, n;
	CHECK_OK(mm_tok_decode(t, ids, 7, &out, &cap, &n));
	CHECK(n == 2 && memcmp(out, "hi", 2) == 0);
	uint32_t bad[] = {'h', 261};
	CHECK_EQ_INT(mm_tok_decode(t, bad, 2, &out, &cap, &n), -MM_ERANGE);
	CHECK(strstr(mm_errmsg(), "261") != NULL);
	CHECK_OK(mm_tok_decode(t, ids, 0, &out, &cap, &n));
	CHECK(n == 0);
	uint32_t *e = NULL;
	size_t ecap = 0;
	CHECK_OK(mm_tok_encode(t, (const uint8_t *)"", 0, &e, &ecap, &n));
	CHECK(n == 0);
	free(e);
	free(out);
	mm_tok_free(t);
}

// Rewrites the CRC after an edit, so that the field checks themselves are reached.
static void fix_crc(uint8_t *p, size_t n) { mm_put_u32(p + n - 4, mm_crc32c(0, p, n - 4)); }

static void expect_refused(const uint8_t *p, size_t n, int code, const char *what)
{
	mm_tokenizer *t = (mm_tokenizer *)1;
	int rc = mm_tok_load_mem(&t, p, n, "bad.tok");
	CHECK_MSG(rc < 0 && (code == 0 || rc == -code) && t == NULL, "%s: rc %d (%s)", what, rc, mm_errmsg());
	CHECK_MSG(strncmp(mm_errmsg(), "bad.tok: ", 9) == 0, "%s: message \"%s\"", what, mm_errmsg());
}

static void test_file(void)
{
	const char *text = "aaab aaab aab";
	mm_tokenizer *t = train_on((const uint8_t *)text, strlen(text), 1000), *u = NULL;
	if (!t)
		return;
	CHECK_OK(mm_tok_save(t, "hand.tok"));
	CHECK_OK(mm_tok_load(&u, "hand.tok"));
	uint8_t *a, *b;
	size_t na, nb;
	CHECK_OK(mm_tok_serialize(t, &a, &na));
	CHECK(u && mm_tok_serialize(u, &b, &nb) == 0 && na == nb && memcmp(a, b, na) == 0);
	CHECK(u && mm_tok_hash(u) == mm_tok_hash(t));
	CHECK_EQ_INT(na, 64 + 3 * 8 + 4);
	CHECK(access("hand.tok.tmp", F_OK) != 0);
	mm_tok_free(u);
	free(b);

	// The committed v1 file reads forever, with the same identity.
	const char *dir = getenv("T");
	char golden[4096];
	snprintf(golden, sizeof golden, "%s/golden/tokenizer-v1.tok", dir ? dir : "tests");
	CHECK_OK(mm_tok_load(&u, golden));
	CHECK(u && mm_tok_serialize(u, &b, &nb) == 0 && na == nb && memcmp(a, b, na) == 0);
	CHECK_MSG(u && mm_tok_hash(u) == 0x0c78adbc6153ddd3ULL, "hash %016llx",
		  u ? (unsigned long long)mm_tok_hash(u) : 0ULL);
	mm_tok_free(u);
	free(b);

	// Every flipped byte and every truncation is refused, naming the file.
	uint8_t c[200];
	int all = 1;
	for (size_t i = 0; i < na; i++)
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(c, a, na);
			c[i] ^= (uint8_t)(1 << bit);
			u = NULL;
			all &= mm_tok_load_mem(&u, c, na, "bad.tok") < 0 && u == NULL &&
			       strncmp(mm_errmsg(), "bad.tok: ", 9) == 0;
		}
	for (size_t len = 0; len < na; len++) {
		u = NULL;
		all &= mm_tok_load_mem(&u, a, len, "bad.tok") < 0 && u == NULL;
	}
	CHECK(all);
	expect_refused(a, 40, MM_ETRUNC, "short");
	expect_refused(a, na - 8, MM_ETRUNC, "one merge short");
	memcpy(c, a, na);
	c[na] = 0;
	expect_refused(c, na + 1, MM_EFORMAT, "trailing byte");
	memcpy(c, a, na);
	c[0] = 'X';
	expect_refused(c, na, MM_EFORMAT, "magic");
	memcpy(c, a, na);
	mm_put_u32(c + 8, 2);
	fix_crc(c, na);
	expect_refused(c, na, MM_EVERSION, "version");
	memcpy(c, a, na);
	c[20] ^= 1;
	expect_refused(c, na, MM_ECHECKSUM, "crc");
	struct {
		size_t off;
		uint32_t v;
		int code;
		const char *what;
	} edits[] = {
		{12, 265, MM_EFORMAT, "vocab size"},
		{20, 300, MM_EFORMAT, "BOS id"},
		{40, 'X', MM_EUNSUPPORTED, "pre-tokenizer"},
		{56, 128, MM_EUNSUPPORTED, "chunk limit"},
		{60, 1, MM_EFORMAT, "reserved"},
		{64, 261, MM_EFORMAT, "merge uses its own id"},
		{68 + 8, 9999, MM_EFORMAT, "merge id out of range"},
		{64 + 8, 257, MM_EFORMAT, "merge of a special token"},
		{64 + 16, 'a', MM_EFORMAT, "duplicate merge"}, // merge 2 becomes (a, a) again
	};
	for (size_t e = 0; e < sizeof edits / sizeof *edits; e++) {
		memcpy(c, a, na);
		mm_put_u32(c + edits[e].off, edits[e].v);
		if (edits[e].off == 64 + 16)
			mm_put_u32(c + 68 + 16, 'a');
		fix_crc(c, na);
		expect_refused(c, na, edits[e].code, edits[e].what);
	}
	CHECK(strstr(mm_errmsg(), "merge 2") != NULL);
	// A merge chain whose piece would outgrow a chunk: (a,a), (261,261), ... doubles each time.
	uint8_t chain[64 + 8 * 9 + 4];
	memcpy(chain, a, 64);
	mm_put_u32(chain + 12, 261 + 9);
	mm_put_u32(chain + 36, 9);
	for (uint32_t k = 0; k < 9; k++) {
		mm_put_u32(chain + 64 + 8 * k, k ? 260 + k : 'a');
		mm_put_u32(chain + 68 + 8 * k, k ? 260 + k : 'a');
	}
	fix_crc(chain, sizeof chain);
	expect_refused(chain, sizeof chain, MM_EFORMAT, "512-byte piece");
	CHECK(strstr(mm_errmsg(), "merge 8") != NULL);
	mm_put_u32(chain + 36, 8);
	mm_put_u32(chain + 12, 261 + 8);
	fix_crc(chain, sizeof chain - 8);
	CHECK_OK(mm_tok_load_mem(&u, chain, sizeof chain - 8, "chain.tok")); // 256 bytes is fine
	mm_tok_free(u);

	CHECK(mm_tok_load(&u, "missing.tok") < 0 && strstr(mm_errmsg(), "missing.tok") != NULL);
	free(a);
	mm_tok_free(t);
}

typedef struct {
	const mm_tokenizer *t;
	const uint8_t *text;
	size_t n;
	uint32_t *ids;
	size_t n_ids;
} enc_job;

static void *enc_thread(void *arg)
{
	enc_job *j = arg;
	size_t cap = 0;
	for (int rep = 0; rep < 5; rep++)
		if (mm_tok_encode(j->t, j->text, j->n, &j->ids, &cap, &j->n_ids) != 0)
			j->n_ids = 0;
	return NULL;
}

static void test_threads(void)
{
	static uint8_t buf[200000];
	size_t n = make_corpus(buf, sizeof buf, 9);
	mm_tokenizer *t = train_on(buf, n, 1000);
	if (!t)
		return;
	enc_job jobs[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (enc_job){t, buf, n, NULL, 0};
		pthread_create(&th[i], NULL, enc_thread, &jobs[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	int same = jobs[0].n_ids > 0;
	for (int i = 1; i < 4; i++)
		same &= jobs[i].n_ids == jobs[0].n_ids && memcmp(jobs[i].ids, jobs[0].ids, 4 * jobs[0].n_ids) == 0;
	CHECK(same);
	// The per-call memo (on for long texts) changes nothing: encode in 1000-byte pieces cut at
	// chunk boundaries and compare.
	uint32_t *ids = NULL;
	size_t cap = 0, k = 0, ni, ok = 1;
	for (size_t i = 0; i < n;) {
		size_t e = i;
		while (e < n && e - i < 1000)
			e += mm_tok_chunk(buf + e, n - e);
		ok &= mm_tok_encode(t, buf + i, e - i, &ids, &cap, &ni) == 0 && k + ni <= jobs[0].n_ids &&
		      memcmp(ids, jobs[0].ids + k, 4 * ni) == 0;
		k += ni;
		i = e;
	}
	CHECK(ok && k == jobs[0].n_ids);
	free(ids);
	for (int i = 0; i < 4; i++)
		free(jobs[i].ids);
	mm_tok_free(t);
}

int main(void)
{
	test_chunking();
	test_hand_corpus();
	test_train_vs_naive();
	test_deterministic();
	test_round_trip();
	test_chunk_cap();
	test_vocab_limits();
	test_decode();
	test_file();
	test_threads();
	return check_done();
}
