// Fixed-layout records of mm's file formats (headers, index records, segment headers) as
// tables. A record is one X-macro list of its fields; MM_LAYOUT turns the list into the table
// that the writer (mm_layout_put) and the reader (mm_layout_get, mm_layout_check) both walk, a
// struct of its values, and compile-time offsets for the loops too hot for a walk. A field then
// exists in one place; tests/test_layout.c holds the tables against the man pages' field tables.
#ifndef MM_LAYOUT_H
#define MM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

// How a field is stored: a run of bytes, a little-endian u32 or u64, or an IEEE 754 binary64
// (f64, little-endian; its value is a double in the values struct, and takes no check).
typedef enum { MM_FIELD_BYTES, MM_FIELD_U32, MM_FIELD_U64, MM_FIELD_F64 } mm_field_type;

// What a reader requires of a field; arg is the row's last column. BYTES fields take a string
// literal, compared NUL-padded to the field's size; numbers take an integer.
//   NONE     no check of its own (the format's code checks it against other fields, if at all)
//   MAGIC    equals arg: the format's magic                               (stage IDENT)
//   VERSION  equals arg: the format version this reader knows             (stage IDENT)
//   CRC      CRC-32C of every byte of the record before it (u32)          (stage CRC)
//   EQ       equals arg: fixed by the format                              (stage FIELDS)
//   KNOWN    equals arg: the one value this reader implements             (stage FIELDS)
//   ZERO     zero: reserved                                               (stage FIELDS)
//   MIN, MAX at least, at most arg                                        (stage FIELDS)
// The writer writes arg for MAGIC, VERSION, EQ and KNOWN, zero for ZERO, computes CRC, and
// takes the value of every other field from the record's values.
typedef enum {
	MM_CHECK_NONE,
	MM_CHECK_MAGIC,
	MM_CHECK_VERSION,
	MM_CHECK_CRC,
	MM_CHECK_EQ,
	MM_CHECK_KNOWN,
	MM_CHECK_ZERO,
	MM_CHECK_MIN,
	MM_CHECK_MAX,
} mm_check;

// Checks run in stages, so that a reader can say what a file is (magic, version) before it
// trusts its checksum, and trust the checksum before it judges the other fields.
enum { MM_STAGE_IDENT, MM_STAGE_CRC, MM_STAGE_FIELDS };

typedef struct mm_field {
	const char *name;      // as in the man page's field table
	uint32_t offset, size; // in bytes, from the start of the record
	mm_field_type type;
	mm_check check;
	uint64_t want;         // numbers: arg
	const uint8_t *bytes;  // BYTES: arg, n_bytes long, NUL-padded to size
	uint32_t n_bytes;
	size_t slot;           // numbers: where the value is in the record's values struct
} mm_field;

typedef struct mm_layout {
	const char *name;      // the man page marks the record's field table with this name
	const mm_field *fields;
	int n_fields;
	uint32_t size;         // bytes of the record
} mm_layout;

// A record: LIST(X, p) calls X(p, name, offset, size, type, check, arg) once per field, in
// offset order, type being BYTES, U32 or U64 and check a suffix of MM_CHECK_. MM_LAYOUT(p, LIST,
// "name") defines, all static:
//   p_bytes    a struct of one byte array per field: sizeof is the record's size,
//              MM_AT(p, field) a field's offset and MM_SIZE(p, field) its size, all constant
//              expressions;
//   p_values   a struct of one uint64_t per number field (a double per f64), named after
//              the field;
//   p_layout   the table.
// Each row's offset is checked at compile time against the sum of the sizes before it, so the
// fields are contiguous and in order; each u32 or u64 field has size 4 or 8.
#define MM_LAYOUT(p, LIST, name)                                                          \
	typedef struct {                                                                  \
		LIST(MM_LAYOUT_BYTES_, p)                                                 \
	} p##_bytes;                                                                      \
	LIST(MM_LAYOUT_ASSERT_, p)                                                        \
	typedef struct {                                                                  \
		LIST(MM_LAYOUT_VALUE_, p)                                                 \
	} p##_values;                                                                     \
	static const mm_field p##_fields[] = {LIST(MM_LAYOUT_ROW_, p)};                   \
	static const mm_layout p##_layout = {name, p##_fields,                            \
					     (int)(sizeof p##_fields / sizeof *p##_fields), \
					     (uint32_t)sizeof(p##_bytes)}

#define MM_AT(p, field) offsetof(p##_bytes, field)
#define MM_SIZE(p, field) sizeof(((p##_bytes *)0)->field)

#define MM_LAYOUT_BYTES_(p, nm, off, sz, ty, ck, arg) uint8_t nm[sz];
#define MM_LAYOUT_ASSERT_(p, nm, off, sz, ty, ck, arg)                                     \
	_Static_assert(offsetof(p##_bytes, nm) == (off), #p "." #nm ": offset is not the sum of the sizes before it"); \
	_Static_assert(MM_LAYOUT_ARG_OK_##ty(sz, arg), #p "." #nm ": size or argument does not fit the type");
#define MM_LAYOUT_VALUE_(p, nm, off, sz, ty, ck, arg) MM_LAYOUT_VALUE_##ty(nm)
#define MM_LAYOUT_ROW_(p, nm, off, sz, ty, ck, arg)                                        \
	{.name = #nm, .offset = (off), .size = (sz), .type = MM_FIELD_##ty, .check = MM_CHECK_##ck, \
	 MM_LAYOUT_ARG_##ty(arg), .slot = MM_LAYOUT_SLOT_##ty(p, nm)},

#define MM_LAYOUT_VALUE_BYTES(nm)
#define MM_LAYOUT_VALUE_U32(nm) uint64_t nm;
#define MM_LAYOUT_VALUE_U64(nm) uint64_t nm;
#define MM_LAYOUT_VALUE_F64(nm) double nm;
// "" arg: a BYTES argument must be a string literal.
#define MM_LAYOUT_ARG_BYTES(arg) .bytes = (const uint8_t *)("" arg), .n_bytes = sizeof("" arg) - 1
#define MM_LAYOUT_ARG_U32(arg) .want = (arg)
#define MM_LAYOUT_ARG_U64(arg) .want = (arg)
#define MM_LAYOUT_ARG_F64(arg) .want = (arg)
#define MM_LAYOUT_ARG_OK_BYTES(sz, arg) (sizeof("" arg) - 1 <= (sz))
#define MM_LAYOUT_ARG_OK_U32(sz, arg) ((sz) == 4 && (uint64_t)(arg) <= UINT32_MAX)
#define MM_LAYOUT_ARG_OK_U64(sz, arg) ((sz) == 8)
#define MM_LAYOUT_ARG_OK_F64(sz, arg) ((sz) == 8 && (arg) == 0)
#define MM_LAYOUT_SLOT_BYTES(p, nm) 0
#define MM_LAYOUT_SLOT_U32(p, nm) offsetof(p##_values, nm)
#define MM_LAYOUT_SLOT_U64(p, nm) offsetof(p##_values, nm)
#define MM_LAYOUT_SLOT_F64(p, nm) offsetof(p##_values, nm)

// Writes the record (L->size bytes at out) from values, a p_values struct.
void mm_layout_put(const mm_layout *L, const void *values, uint8_t *out);
// Reads the number fields of the record at in into values. Checks nothing.
void mm_layout_get(const mm_layout *L, const uint8_t *in, void *values);
// Applies the checks of one stage to the record at in (L->size bytes). A failure names path,
// the field and its file offset (base is the record's) and returns the error: MM_EFORMAT, or
// MM_EVERSION (VERSION), MM_ECHECKSUM (CRC), MM_EUNSUPPORTED (KNOWN).
int mm_layout_check(const mm_layout *L, const uint8_t *in, int stage, const char *path, uint64_t base);
// 1 if the first n bytes at in (n may be short of the record) agree with its MAGIC fields.
int mm_layout_magic_ok(const mm_layout *L, const uint8_t *in, size_t n);

// The records of each file format, NULL-terminated, for tests/test_layout.c.
extern const mm_layout *const mm_shard_layouts[];
extern const mm_layout *const mm_tok_layouts[];
extern const mm_layout *const mm_ckpt_layouts[];

#endif
