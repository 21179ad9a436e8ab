/*
 * _otlp_fast.c - C fast path for decoding OTLP trace exports (protobuf) into EventBatch columns.
 *
 *   decode_traces(data: bytes | bytearray | memoryview)
 *       -> (cols: dict[str, list], attrs: dict[tuple[str, str], list], n: int, rejected: int,
 *           error_message: str)
 *
 * Parses the proto3 wire format of opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest
 * directly (no protobuf runtime) and builds the columns of tracehive.model.batch.EventBatch.  The
 * output must be identical to the pure-Python reference decoder (tracehive.ingest.otlp,
 * decode_traces_py(body, "protobuf")); the mapping is documented in ingest/otlp/traces.py and
 * ingest/otlp/common.py, and tests/ingest/test_otlp_fast.py checks the two differentially.
 *
 * Wire semantics follow upb (the protobuf runtime behind Python's ParseFromString), so that a body
 * is refused here exactly when ParseFromString refuses it:
 *   - varints up to 10 bytes (excess high bits ignored); tags up to 5 bytes and <= UINT32_MAX;
 *   - lengths must be < INT32_MAX and fit in the enclosing message;
 *   - wire types 6 and 7, stray or mismatched end-group tags are errors; field number 0 is an
 *     error at message level (but not inside an unknown group, where upb does not check it);
 *   - a known field arriving with another wire type is an unknown field (skipped, not an error);
 *   - unknown fields of every wire type are skipped, groups recursively;
 *   - every string field (also ones we do not use, like trace_state, and string fields that a
 *     later occurrence overwrites, and everything inside rejected spans) must be valid UTF-8;
 *   - nesting deeper than 100 messages/groups below the top-level message is an error;
 *   - scalars: last occurrence wins; singular sub-messages (resource, scope, status,
 *     KeyValue.value, AnyValue.array_value/kvlist_value) merge; repeated fields append;
 *   - AnyValue's oneof: the last member seen wins; a sub-message member merges only into the same
 *     member.
 * Malformed input raises ValueError("malformed OTLP protobuf: <what> (at byte N)").
 *
 * Per-request limits (MAX_ROWS, MAX_ATTR_KEYS, MAX_CELLS, MAX_SLOTS below; the numbers, messages
 * and order of checks are ingest/otlp/common.py's): a request past one raises
 * ValueError(<common.py's message>) as soon as the first row past it is found, before that row is
 * stored, so a hostile body (a resource with 50k attributes over 20k spans: 10^9 cells; one span
 * with 200k events and 2,000 one-off keys: 4 * 10^8 slots of dense output) costs no more than the
 * limits.  MAX_SLOTS bounds columns x rows, counting columns as the reference's RowWriter.column
 * makes them: a (key, type) pair of each compacted resource/scope list and of every value of a
 * row's own attributes (count_col, also for a value a later one of its key overrides).  Rows are
 * checked when a row starts (row_start), keys then slots when a resource/scope list is compacted
 * and when a row's own attribute makes a new (key, type) column (row_add_own), cells then slots
 * once per row (row_emit), in the reference's order.  The rest of the body is then not read, so a
 * body that is also malformed further on reports the limit.
 *
 * A resource whose service.name is not a valid dataset name (after stripping; the rule is
 * tenancy.names.validate_dataset_name, called once per resource) has
 * its spans rejected and counted (rejected_service), after the checks ParseFromString makes on
 * them; it contributes nothing to the limits.
 *
 * Shape of the work: each message is walked with a tag loop; where a message's rows depend on
 * fields that may come later (a span's ids before its attributes, events and links; a resource
 * before its scope_spans) the message is walked again for those fields, from the first
 * occurrence on.  Attribute values are converted once (resource and scope lists once per
 * resource/scope, deduplicated), keys are interned per call in a SipHash-keyed table (so hostile
 * keys cannot force collisions) behind a direct-mapped front cache, short string values go
 * through a direct-mapped cache (a collision only costs a miss).  Fixed columns are stored
 * row-major and attribute values as (column, row, value) cells, and turned into Python lists at
 * the end.  Scratch buffers are kept between calls (re-faulting them cost ~40% of the time); a
 * call that finds them busy (re-entered from another thread while this one runs Python code,
 * e.g. the JSON encoder for arrays) uses a private set.  Every error path releases what it holds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "_otlp_fast.c assumes a little-endian host (the pure-Python decoder is used elsewhere)"
#endif

#define MAX_DEPTH 100      /* upb's default: messages/groups nested below the top-level message */
#define STR_CACHE_MAX 96   /* string values up to this many bytes go through the value cache */
#define KCACHE_SIZE 512    /* direct-mapped front cache of attribute keys (power of 2) */
#define VCACHE_SIZE 2048   /* direct-mapped cache of short string values (power of 2) */

/* Per-request limits: keep these (and the messages) identical to ingest/otlp/common.py.  The
 * #ifndef is for tests only (tests/ingest/test_otlp_limits.py builds a copy with tiny limits with
 * -D to check the order of the checks against the reference). */
#ifndef MAX_ROWS
#define MAX_ROWS 200000        /* rows: spans + span events + links */
#endif
#ifndef MAX_ATTR_KEYS
#define MAX_ATTR_KEYS 2000     /* distinct attribute keys (Honeycomb: 2,000 columns per event) */
#endif
#ifndef MAX_CELLS
#define MAX_CELLS 10000000     /* attribute values placed into rows */
#endif
#ifndef MAX_SLOTS
#define MAX_SLOTS 20000000     /* attribute columns (key, type) x rows: the dense output */
#endif
#define XSTR(x) #x
#define STR(x) XSTR(x)
static const char MSG_TOO_MANY_ROWS[] =
    "request has more than " STR(MAX_ROWS) " rows (spans, span events and links)";
static const char MSG_TOO_MANY_KEYS[] =
    "request has more than " STR(MAX_ATTR_KEYS) " distinct attribute keys";
static const char MSG_TOO_MANY_CELLS[] =
    "request has more than " STR(MAX_CELLS)
    " attribute values (resource and scope attributes count once per row)";
static const char MSG_TOO_MANY_SLOTS[] =
    "request has more than " STR(MAX_SLOTS)
    " attribute slots (attribute columns x rows; a column per attribute key and value type)";
/* common.py: INVALID_SERVICE_NAME; traces.py: rejected_message */
#define MSG_REJECTED_IDS "spans rejected: invalid trace_id or span_id"
#define MSG_REJECTED_SERVICE                                                                  \
    "spans rejected: service.name is not a valid dataset name (longer than 255 characters or " \
    "has control characters)"

/* ------------------------------------------------------------------------------------------ */
/* Module-level constants                                                                      */

#define NFIX 19
enum {
    C_DATASET, C_TS, C_DUR, C_TRACE, C_SPAN, C_PARENT, C_NAME, C_SERVICE, C_KIND, C_SCODE,
    C_SMSG, C_ERROR, C_SIGNAL, C_LIBN, C_LIBV, C_SAMPLE, C_BODY, C_SEVT, C_SEVN
};
static const char *const FIX_NAMES[NFIX] = {
    "dataset", "ts_ns", "dur_ns", "trace_id", "span_id", "parent_id", "name", "service", "kind",
    "status_code", "status_message", "error", "signal", "library_name", "library_version",
    "samplerate", "body", "severity_text", "severity_number",
};

/* attribute column types; 0 = value dropped */
enum { T_NONE = 0, T_S = 1, T_I = 2, T_F = 3, T_B = 4 };

/* special attribute keys, registered first in every call so their ids are fixed */
enum { KEY_SERVICE_NAME = 0, KEY_SAMPLE_RATE = 1, KEY_LINK_TRACE = 2, KEY_LINK_SPAN = 3, NSPECIAL = 4 };
static const char *const SPECIAL_KEYS[NSPECIAL] = {
    "service.name", "SampleRate", "trace.link.trace_id", "trace.link.span_id",
};

static PyObject *g_fix_names[NFIX];
static PyObject *g_type_names[5];
static PyObject *g_kinds[6];
static PyObject *g_sig_span, *g_sig_event, *g_sig_link;
static PyObject *g_unknown_service;
static PyObject *g_empty_str;
static PyObject *g_one;
static PyObject *g_json_encode; /* json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode */
static PyObject *g_str_strip;   /* "strip" */
/* tracehive.tenancy.names.validate_dataset_name and the InvalidName it raises: the one rule */
static PyObject *g_validate_dataset_name, *g_invalid_name;

/* ------------------------------------------------------------------------------------------ */
/* Decoder state                                                                               */

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Slice;

typedef struct {
    uint32_t key;  /* key id */
    uint8_t type;  /* T_*; T_NONE when the value is dropped (unset AnyValue, NaN, strindex) */
    uint8_t src;   /* AnyValue oneof case the value came from (1 string .. 8 strindex), 0 unset */
    PyObject *val; /* owned; NULL when dropped */
} Attr;

typedef struct {
    Attr *v;
    size_t n, cap;
} AttrList;

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
    Py_hash_t h;
    PyObject *str; /* owned */
    int32_t key;   /* key id, -1 when never used as an attribute key */
} StrEnt;

typedef struct {
    PyObject *str; /* borrowed from the string table */
    int32_t col[4];
    uint32_t stamp, slot;
    int counted;   /* counted against MAX_ATTR_KEYS */
    uint8_t slots; /* bit 1 << T_*: a (key, type) column counted against MAX_SLOTS */
} KeyEnt;

/* Front caches: one slot per cheap hash, no chains (a collision only costs a miss, so hostile
 * input cannot make lookups slow); verified by length + memcmp. */
typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
    int32_t key;
} KCacheEnt;

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
    PyObject *str; /* owned */
    uint32_t hits;
} VCacheEnt;

typedef struct {
    uint32_t col, row;
    PyObject *v; /* owned */
} Cell;

typedef struct {
    uint32_t key;
    uint8_t type;
    PyObject *list; /* while building the result */
} Column;

typedef struct {
    uint32_t key;
    uint8_t type;
    PyObject *val; /* borrowed */
} RowAttr;

typedef struct {
    const uint8_t *base;
    const char *err;
    Py_ssize_t err_off;

    StrEnt *ents;
    size_t nents, capents;
    uint32_t *slots; /* open addressing: ent index + 1, 0 empty */
    size_t nslots;

    KeyEnt *keys;
    size_t nkeys, capkeys;

    KCacheEnt *kcache; /* KCACHE_SIZE entries */
    VCacheEnt *vcache; /* VCACHE_SIZE entries */

    PyObject *(*rows)[NFIX]; /* row-major fixed columns, owned references */
    size_t nrows, caprows;

    Column *cols;
    size_t ncols, capcols;
    Cell *cells; /* every attribute value of every row, in row order */
    size_t ncells, capcells;

    RowAttr *rt;
    size_t nrt, caprt;
    uint32_t stamp;
    size_t nattr_keys; /* keys counted against MAX_ATTR_KEYS */
    size_t nslot_cols; /* (key, type) columns counted against MAX_SLOTS */

    AttrList span_attrs, tmp_attrs;
    Py_ssize_t rejected;         /* spans rejected for their ids */
    Py_ssize_t rejected_service; /* spans of resources with an invalid service.name */
} Dec;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */

static void wire_err(Dec *d, const uint8_t *at, const char *msg)
{
    if (!d->err) {
        d->err = msg;
        d->err_off = at ? (Py_ssize_t)(at - d->base) : -1;
    }
}

/* Grow *buf (of *cap elements of size el) to hold at least need elements. */
static int grow(void **buf, size_t *cap, size_t need, size_t el)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > ((size_t)PY_SSIZE_T_MAX / 2) / el) {
            PyErr_NoMemory();
            return -1;
        }
        nc *= 2;
    }
    void *nb = PyMem_Realloc(*buf, nc * el);
    if (!nb) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = nb;
    *cap = nc;
    return 0;
}

static inline uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

static inline uint64_t be64(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

static inline int all_zero(Slice s)
{
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (s.p[i]) return 0;
    return 1;
}

static inline int slice_eq(Slice s, const char *lit, size_t n)
{
    return (size_t)s.n == n && memcmp(s.p, lit, n) == 0;
}

static void attrs_clear(AttrList *l)
{
    for (size_t i = 0; i < l->n; i++) Py_XDECREF(l->v[i].val);
    l->n = 0;
}

static void attrs_free(AttrList *l)
{
    attrs_clear(l);
    PyMem_Free(l->v);
    l->v = NULL;
    l->cap = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Wire primitives                                                                             */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

/* Varint of up to 10 bytes; bits beyond 64 are discarded (as upb does). NULL if truncated or
 * longer than 10 bytes. */
static inline const uint8_t *rd_varint(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    if (p < end && !(*p & 0x80)) {
        *out = *p;
        return p + 1;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p + i >= end) return NULL;
        uint64_t b = p[i];
        v |= (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return p + i + 1;
        }
    }
    return NULL;
}

static inline int get_varint(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = rd_varint(*pp, end, out);
    if (!q) return (wire_err(d, *pp, "truncated or overlong varint"), -1);
    *pp = q;
    return 0;
}

/* Caller guarantees *pp < end. */
static inline int rd_tag(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t *fn, int *wt)
{
    const uint8_t *p = *pp;
    uint32_t tag;
    if (!(*p & 0x80)) {
        tag = *p;
        p++;
    } else {
        uint64_t v;
        const uint8_t *q = rd_varint(p, end, &v);
        if (!q) return (wire_err(d, p, "truncated or overlong tag"), -1);
        if (q - p > 5 || v > UINT32_MAX) return (wire_err(d, p, "invalid tag"), -1);
        tag = (uint32_t)v;
        p = q;
    }
    *fn = tag >> 3;
    *wt = (int)(tag & 7);
    *pp = p;
    return 0;
}

static inline int rd_len(Dec *d, const uint8_t **pp, const uint8_t *end, Slice *out)
{
    uint64_t v;
    const uint8_t *p = *pp;
    const uint8_t *q = rd_varint(p, end, &v);
    if (!q) return (wire_err(d, p, "truncated or overlong length"), -1);
    if (v >= INT32_MAX || v > (uint64_t)(end - q)) return (wire_err(d, p, "length past end of message"), -1);
    out->p = q;
    out->n = (Py_ssize_t)v;
    *pp = q + v;
    return 0;
}

static inline int rd_fixed64(Dec *d, const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    if (end - *pp < 8) return (wire_err(d, *pp, "truncated fixed64"), -1);
    *out = ld64(*pp);
    *pp += 8;
    return 0;
}

static inline int rd_fixed32(Dec *d, const uint8_t **pp, const uint8_t *end)
{
    if (end - *pp < 4) return (wire_err(d, *pp, "truncated fixed32"), -1);
    *pp += 4;
    return 0;
}

static int skip_value(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t fn, int wt, int depth);

/* Skip an unknown group whose start tag (field gfn) was just read; depth is the group's depth.
 * Inside a group upb checks tags, wire types, lengths and nesting but not field numbers (a field
 * 0 inside an unknown group is accepted by ParseFromString; at message level it is an error). */
static int skip_group(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t gfn, int depth)
{
    if (depth > MAX_DEPTH) return (wire_err(d, *pp, "nesting too deep"), -1);
    for (;;) {
        if (*pp >= end) return (wire_err(d, *pp, "unterminated group"), -1);
        uint32_t fn;
        int wt;
        const uint8_t *at = *pp;
        if (rd_tag(d, pp, end, &fn, &wt) < 0) return -1;
        if (wt == WT_EGROUP) {
            if (fn != gfn) return (wire_err(d, at, "mismatched end-group tag"), -1);
            return 0;
        }
        if (skip_value(d, pp, end, fn, wt, depth) < 0) return -1;
    }
}

/* Skip the value of a field whose tag was just read, in a message or group at depth `depth`. */
static int skip_value(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t fn, int wt, int depth)
{
    switch (wt) {
    case WT_VARINT: {
        uint64_t v;
        return get_varint(d, pp, end, &v);
    }
    case WT_I64:
        if (end - *pp < 8) return (wire_err(d, *pp, "truncated fixed64"), -1);
        *pp += 8;
        return 0;
    case WT_LEN: {
        Slice s;
        return rd_len(d, pp, end, &s);
    }
    case WT_SGROUP:
        return skip_group(d, pp, end, fn, depth + 1);
    case WT_I32:
        if (end - *pp < 4) return (wire_err(d, *pp, "truncated fixed32"), -1);
        *pp += 4;
        return 0;
    case WT_EGROUP:
        return (wire_err(d, *pp, "unexpected end-group tag"), -1);
    default:
        return (wire_err(d, *pp, "invalid wire type"), -1);
    }
}

/* Skip an unknown field of a message (tag already read); the message is at depth `depth`. */
static inline int skip_field(Dec *d, const uint8_t **pp, const uint8_t *end, uint32_t fn, int wt,
                             int depth)
{
    if (fn == 0) return (wire_err(d, *pp, "field number 0"), -1);
    return skip_value(d, pp, end, fn, wt, depth);
}

/* Strict UTF-8 (no surrogates, no overlongs, <= U+10FFFF), as upb and Python's codec check it. */
static int utf8_check(Dec *d, Slice s, int *ascii)
{
    const uint8_t *p = s.p, *e = s.p + s.n;
    uint64_t w;
    /* ASCII fast path a word at a time; the last (partial) word is read as the 8 bytes ending at
     * e, which stay inside the input buffer (bytes before the string: its tag and length) */
    if (s.n >= 8) {
        for (; e - p > 8; p += 8) {
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ULL) goto slow;
        }
        memcpy(&w, e - 8, 8);
        if (!(w & 0x8080808080808080ULL)) goto is_ascii;
    } else if (s.n > 0 && e - 8 >= d->base) {
        memcpy(&w, e - 8, 8);
        w >>= 8 * (8 - s.n); /* little-endian: drop the bytes before the string */
        if (!(w & 0x8080808080808080ULL)) goto is_ascii;
    } else {
        while (p < e && *p < 0x80) p++;
        if (p == e) goto is_ascii;
    }
slow:
    *ascii = 0;
    while (p < e) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (e - p < 2 || (p[1] & 0xC0) != 0x80) goto bad;
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (e - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) goto bad;
            if (c == 0xE0 && p[1] < 0xA0) goto bad;
            if (c == 0xED && p[1] > 0x9F) goto bad;
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (e - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
                (p[3] & 0xC0) != 0x80)
                goto bad;
            if (c == 0xF0 && p[1] < 0x90) goto bad;
            if (c == 0xF4 && p[1] > 0x8F) goto bad;
            p += 4;
        } else {
            goto bad;
        }
    }
    return 0;
is_ascii:
    *ascii = 1;
    return 0;
bad:
    return (wire_err(d, p, "invalid UTF-8 in string field"), -1);
}

/* ------------------------------------------------------------------------------------------ */
/* Generic schema-driven validation (for content we do not turn into rows: rejected spans and
 * resources, resource entity_refs).  Mirrors exactly what ParseFromString checks. */

enum { K_UNK = 0, K_VAR, K_I64, K_I32, K_STR, K_BYT, K_MSG };
enum { M_SPAN, M_EVENT, M_LINK, M_STATUS, M_KV, M_ANY, M_ARR, M_KVL, M_ENTITY, M_SCOPE,
       M_SCOPE_SPANS, M_COUNT };
typedef struct {
    uint8_t kind, sub;
} FieldSpec;
#define MAXF 16
static const FieldSpec SCHEMA[M_COUNT][MAXF + 1] = {
    [M_SPAN] = {[1] = {K_BYT, 0}, [2] = {K_BYT, 0}, [3] = {K_STR, 0}, [4] = {K_BYT, 0},
                [5] = {K_STR, 0}, [6] = {K_VAR, 0}, [7] = {K_I64, 0}, [8] = {K_I64, 0},
                [9] = {K_MSG, M_KV}, [10] = {K_VAR, 0}, [11] = {K_MSG, M_EVENT},
                [12] = {K_VAR, 0}, [13] = {K_MSG, M_LINK}, [14] = {K_VAR, 0},
                [15] = {K_MSG, M_STATUS}, [16] = {K_I32, 0}},
    [M_EVENT] = {[1] = {K_I64, 0}, [2] = {K_STR, 0}, [3] = {K_MSG, M_KV}, [4] = {K_VAR, 0}},
    [M_LINK] = {[1] = {K_BYT, 0}, [2] = {K_BYT, 0}, [3] = {K_STR, 0}, [4] = {K_MSG, M_KV},
                [5] = {K_VAR, 0}, [6] = {K_I32, 0}},
    [M_STATUS] = {[2] = {K_STR, 0}, [3] = {K_VAR, 0}},
    [M_KV] = {[1] = {K_STR, 0}, [2] = {K_MSG, M_ANY}, [3] = {K_VAR, 0}},
    [M_ANY] = {[1] = {K_STR, 0}, [2] = {K_VAR, 0}, [3] = {K_VAR, 0}, [4] = {K_I64, 0},
               [5] = {K_MSG, M_ARR}, [6] = {K_MSG, M_KVL}, [7] = {K_BYT, 0}, [8] = {K_VAR, 0}},
    [M_ARR] = {[1] = {K_MSG, M_ANY}},
    [M_KVL] = {[1] = {K_MSG, M_KV}},
    [M_ENTITY] = {[1] = {K_STR, 0}, [2] = {K_STR, 0}, [3] = {K_STR, 0}, [4] = {K_STR, 0}},
    [M_SCOPE] = {[1] = {K_STR, 0}, [2] = {K_STR, 0}, [3] = {K_MSG, M_KV}, [4] = {K_VAR, 0}},
    [M_SCOPE_SPANS] = {[1] = {K_MSG, M_SCOPE}, [2] = {K_MSG, M_SPAN}, [3] = {K_STR, 0}},
};
static const int KIND_WT[] = {-1, WT_VARINT, WT_I64, WT_I32, WT_LEN, WT_LEN, WT_LEN};

static int validate_msg(Dec *d, const uint8_t *p, const uint8_t *end, int m, int depth)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn <= MAXF) {
            FieldSpec f = SCHEMA[m][fn];
            if (f.kind != K_UNK && KIND_WT[f.kind] == wt) {
                Slice s;
                uint64_t v;
                int ascii;
                switch (f.kind) {
                case K_VAR:
                    if (get_varint(d, &p, end, &v) < 0) return -1;
                    continue;
                case K_I64:
                    if (rd_fixed64(d, &p, end, &v) < 0) return -1;
                    continue;
                case K_I32:
                    if (rd_fixed32(d, &p, end) < 0) return -1;
                    continue;
                case K_STR:
                    if (rd_len(d, &p, end, &s) < 0 || utf8_check(d, s, &ascii) < 0) return -1;
                    continue;
                case K_BYT:
                    if (rd_len(d, &p, end, &s) < 0) return -1;
                    continue;
                case K_MSG:
                    if (rd_len(d, &p, end, &s) < 0) return -1;
                    if (validate_msg(d, s.p, s.p + s.n, f.sub, depth + 1) < 0) return -1;
                    continue;
                }
            }
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Strings: per-call intern table (also the attribute key table)                               */

static PyObject *new_str(const uint8_t *p, Py_ssize_t n, int ascii)
{
    if (ascii) {
        PyObject *o = PyUnicode_New(n, 127);
        if (o && n) memcpy(PyUnicode_1BYTE_DATA(o), p, (size_t)n);
        return o;
    }
    return PyUnicode_DecodeUTF8((const char *)p, n, "strict");
}

static inline Py_hash_t hash_bytes(const uint8_t *p, Py_ssize_t n)
{
    /* CPython's randomized SipHash: per-process keyed, so hostile keys cannot force collisions. */
    return _Py_HashBytes(p, n);
}

static int strtab_rehash(Dec *d, size_t nslots)
{
    uint32_t *ns = PyMem_Calloc(nslots, sizeof(uint32_t));
    if (!ns) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = nslots - 1;
    for (size_t i = 0; i < d->nents; i++) {
        size_t j = (size_t)d->ents[i].h & mask;
        while (ns[j]) j = (j + 1) & mask;
        ns[j] = (uint32_t)(i + 1);
    }
    PyMem_Free(d->slots);
    d->slots = ns;
    d->nslots = nslots;
    return 0;
}

/* Index of the entry for bytes (p, n), inserting it (with a new str) if absent; -1 on error. */
static Py_ssize_t strtab_get(Dec *d, const uint8_t *p, Py_ssize_t n, int ascii)
{
    Py_hash_t h = hash_bytes(p, n);
    size_t mask = d->nslots - 1;
    size_t j = (size_t)h & mask;
    uint32_t e;
    while ((e = d->slots[j]) != 0) {
        StrEnt *s = &d->ents[e - 1];
        if (s->h == h && s->n == n && memcmp(s->p, p, (size_t)n) == 0) return (Py_ssize_t)(e - 1);
        j = (j + 1) & mask;
    }
    if (d->nents >= UINT32_MAX - 1) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *o = new_str(p, n, ascii);
    if (!o) return -1;
    if (grow((void **)&d->ents, &d->capents, d->nents + 1, sizeof(StrEnt)) < 0) {
        Py_DECREF(o);
        return -1;
    }
    size_t idx = d->nents++;
    d->ents[idx] = (StrEnt){p, n, h, o, -1};
    d->slots[j] = (uint32_t)(idx + 1);
    if (d->nents * 2 > d->nslots) {
        if (strtab_rehash(d, d->nslots * 2) < 0) return -1;
    }
    return (Py_ssize_t)idx;
}

/* Equality of two short byte strings without a libc call. */
static inline int bytes_eq(const uint8_t *a, const uint8_t *b, Py_ssize_t n)
{
    uint64_t x, y;
    if (n >= 8) {
        Py_ssize_t i = 0;
        for (; n - i > 8; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y) return 0;
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t x1, y1, x2, y2;
        memcpy(&x1, a, 4);
        memcpy(&y1, b, 4);
        memcpy(&x2, a + n - 4, 4);
        memcpy(&y2, b + n - 4, 4);
        return x1 == y1 && x2 == y2;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Cheap, unkeyed hash for the direct-mapped front caches only (never for chained tables). */
static inline size_t fast_hash(const uint8_t *p, Py_ssize_t n)
{
    uint64_t a, b, c = 0;
    if (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        if (n > 16) memcpy(&c, p + n / 2 - 4, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        a = x;
        b = y;
    } else {
        a = n ? ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1] : 0;
        b = 0;
    }
    uint64_t h = (a ^ 0x9E3779B97F4A7C15ULL) * 0xff51afd7ed558ccdULL;
    h ^= (b + (uint64_t)n) * 0xc4ceb9fe1a85ec53ULL;
    h ^= c * 0x2545F4914F6CDD1DULL;
    return (size_t)(h ^ (h >> 29) ^ (h >> 47));
}

/* New reference to the str for UTF-8 bytes already validated.  Short strings go through a
 * direct-mapped cache (repeated values share one object); an entry that keeps hitting is not
 * evicted by one-off values. */
static PyObject *get_str(Dec *d, Slice s, int ascii)
{
    if (s.n > STR_CACHE_MAX) return new_str(s.p, s.n, ascii);
    VCacheEnt *e = &d->vcache[fast_hash(s.p, s.n) & (VCACHE_SIZE - 1)];
    if (e->str && e->n == s.n && bytes_eq(e->p, s.p, s.n)) {
        if (e->hits < 8) e->hits++;
        Py_INCREF(e->str);
        return e->str;
    }
    PyObject *o = new_str(s.p, s.n, ascii);
    if (!o) return NULL;
    if (!e->str || e->hits == 0) {
        Py_XDECREF(e->str);
        e->p = s.p;
        e->n = s.n;
        e->str = o;
        e->hits = 0;
        Py_INCREF(o);
    } else {
        e->hits--;
    }
    return o;
}

/* Attribute key id for validated UTF-8 bytes; -1 on error.  The key table is keyed by CPython's
 * randomized SipHash (collision-resistant); a direct-mapped front cache skips it for the usual
 * few dozen keys of a batch. */
static Py_ssize_t get_key(Dec *d, Slice s, int ascii)
{
    KCacheEnt *c = &d->kcache[fast_hash(s.p, s.n) & (KCACHE_SIZE - 1)];
    if (c->key >= 0 && c->n == s.n && bytes_eq(c->p, s.p, s.n)) return c->key;
    Py_ssize_t i = strtab_get(d, s.p, s.n, ascii);
    if (i < 0) return -1;
    StrEnt *e = &d->ents[i];
    if (e->key < 0) {
        if (grow((void **)&d->keys, &d->capkeys, d->nkeys + 1, sizeof(KeyEnt)) < 0) return -1;
        KeyEnt *k = &d->keys[d->nkeys];
        k->str = e->str;
        k->col[0] = k->col[1] = k->col[2] = k->col[3] = -1;
        k->stamp = 0;
        k->slot = 0;
        k->counted = 0;
        k->slots = 0;
        e->key = (int32_t)d->nkeys++;
    }
    c->p = s.p;
    c->n = s.n;
    c->key = e->key;
    return e->key;
}

/* ------------------------------------------------------------------------------------------ */
/* Value conversions                                                                           */

static PyObject *to_base64(const uint8_t *p, Py_ssize_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Py_ssize_t out_n = ((n + 2) / 3) * 4;
    PyObject *o = PyUnicode_New(out_n, 127);
    if (!o) return NULL;
    Py_UCS1 *w = PyUnicode_1BYTE_DATA(o);
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        *w++ = tbl[(v >> 18) & 63];
        *w++ = tbl[(v >> 12) & 63];
        *w++ = tbl[(v >> 6) & 63];
        *w++ = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *w++ = tbl[(v >> 18) & 63];
        *w++ = tbl[(v >> 12) & 63];
        *w++ = '=';
        *w++ = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
        *w++ = tbl[(v >> 18) & 63];
        *w++ = tbl[(v >> 12) & 63];
        *w++ = tbl[(v >> 6) & 63];
        *w++ = '=';
    }
    return o;
}

static PyObject *to_hex(Slice s)
{
    static const char hx[] = "0123456789abcdef";
    if (s.n > PY_SSIZE_T_MAX / 2) return PyErr_NoMemory();
    PyObject *o = PyUnicode_New(s.n * 2, 127);
    if (!o) return NULL;
    Py_UCS1 *w = PyUnicode_1BYTE_DATA(o);
    for (Py_ssize_t i = 0; i < s.n; i++) {
        *w++ = hx[s.p[i] >> 4];
        *w++ = hx[s.p[i] & 15];
    }
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* AnyValue / KeyValue                                                                         */

enum { AV_NONE = 0, AV_STR = 1, AV_BOOL = 2, AV_INT = 3, AV_DOUBLE = 4, AV_ARRAY = 5,
       AV_KVLIST = 6, AV_BYTES = 7, AV_STRINDEX = 8 };

typedef struct {
    int kase;
    int ascii;
    Slice s;
    uint64_t u;
    PyObject *obj; /* list (array_value) or dict (kvlist_value), owned */
} AnyState;

static void any_clear(AnyState *a)
{
    Py_CLEAR(a->obj);
    a->kase = AV_NONE;
}

static int parse_array(Dec *d, const uint8_t *p, const uint8_t *end, int depth, PyObject *list);
static int parse_kvlist(Dec *d, const uint8_t *p, const uint8_t *end, int depth, PyObject *dict);

/* Parse (merge) one serialized AnyValue into *a. */
static int parse_any(Dec *d, const uint8_t *p, const uint8_t *end, int depth, AnyState *a)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        uint64_t v;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        switch (fn) {
        case 1:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &s) < 0 || utf8_check(d, s, &a->ascii) < 0) return -1;
            Py_CLEAR(a->obj);
            a->kase = AV_STR;
            a->s = s;
            continue;
        case 2:
        case 3:
        case 8:
            if (wt != WT_VARINT) break;
            if (get_varint(d, &p, end, &v) < 0) return -1;
            Py_CLEAR(a->obj);
            a->kase = (int)fn;
            a->u = fn == 2 ? (v != 0) : v;
            continue;
        case 4:
            if (wt != WT_I64) break;
            if (rd_fixed64(d, &p, end, &v) < 0) return -1;
            Py_CLEAR(a->obj);
            a->kase = AV_DOUBLE;
            a->u = v;
            continue;
        case 5:
        case 6:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (a->kase != (int)fn || !a->obj) {
                Py_CLEAR(a->obj);
                a->obj = fn == 5 ? PyList_New(0) : PyDict_New();
                if (!a->obj) return -1;
                a->kase = (int)fn;
            }
            if (fn == 5) {
                if (parse_array(d, s.p, s.p + s.n, depth + 1, a->obj) < 0) return -1;
            } else {
                if (parse_kvlist(d, s.p, s.p + s.n, depth + 1, a->obj) < 0) return -1;
            }
            continue;
        case 7:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &s) < 0) return -1;
            Py_CLEAR(a->obj);
            a->kase = AV_BYTES;
            a->s = s;
            continue;
        default:
            break;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

static inline double u2d(uint64_t u)
{
    double x;
    memcpy(&x, &u, 8);
    return x;
}

/* The natural Python value of an AnyValue (inside arrays and kvlists): new reference. */
static PyObject *any_natural(Dec *d, AnyState *a)
{
    switch (a->kase) {
    case AV_STR:
        return get_str(d, a->s, a->ascii);
    case AV_BOOL:
        return PyBool_FromLong((long)a->u);
    case AV_INT:
        return PyLong_FromLongLong((long long)(int64_t)a->u);
    case AV_DOUBLE:
        return PyFloat_FromDouble(u2d(a->u));
    case AV_ARRAY:
    case AV_KVLIST:
        Py_INCREF(a->obj);
        return a->obj;
    case AV_BYTES:
        return to_base64(a->s.p, a->s.n);
    default: /* unset, string_value_strindex */
        Py_RETURN_NONE;
    }
}

/* A top-level attribute value: sets *type (T_NONE when dropped) and *out (new ref or NULL). */
static int any_attr(Dec *d, AnyState *a, uint8_t *type, PyObject **out)
{
    *out = NULL;
    *type = T_NONE;
    switch (a->kase) {
    case AV_STR:
        *out = get_str(d, a->s, a->ascii);
        *type = T_S;
        break;
    case AV_BOOL:
        *out = PyBool_FromLong((long)a->u);
        *type = T_B;
        break;
    case AV_INT:
        *out = PyLong_FromLongLong((long long)(int64_t)a->u);
        *type = T_I;
        break;
    case AV_DOUBLE: {
        double x = u2d(a->u);
        if (isnan(x)) return 0;
        *out = PyFloat_FromDouble(x);
        *type = T_F;
        break;
    }
    case AV_ARRAY:
    case AV_KVLIST:
        *out = PyObject_CallOneArg(g_json_encode, a->obj);
        *type = T_S;
        break;
    case AV_BYTES:
        *out = to_base64(a->s.p, a->s.n);
        *type = T_S;
        break;
    default:
        return 0;
    }
    return *out ? 0 : -1;
}

/* Parse one serialized KeyValue: key (last wins) and value (occurrences merge). */
static int parse_kv_raw(Dec *d, const uint8_t *p, const uint8_t *end, int depth, Slice *key,
                        int *key_ascii, AnyState *val)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    key->p = p;
    key->n = 0;
    *key_ascii = 1;
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        uint64_t v;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, key) < 0 || utf8_check(d, *key, key_ascii) < 0) return -1;
            continue;
        }
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_any(d, s.p, s.p + s.n, depth + 1, val) < 0) return -1;
            continue;
        }
        if (fn == 3 && wt == WT_VARINT) { /* key_strindex */
            if (get_varint(d, &p, end, &v) < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

static int parse_array(Dec *d, const uint8_t *p, const uint8_t *end, int depth, PyObject *list)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            AnyState a = {0};
            if (parse_any(d, s.p, s.p + s.n, depth + 1, &a) < 0) {
                any_clear(&a);
                return -1;
            }
            PyObject *v = any_natural(d, &a);
            any_clear(&a);
            if (!v) return -1;
            int r = PyList_Append(list, v);
            Py_DECREF(v);
            if (r < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

static int parse_kvlist(Dec *d, const uint8_t *p, const uint8_t *end, int depth, PyObject *dict)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            AnyState a = {0};
            Slice key;
            int key_ascii;
            if (parse_kv_raw(d, s.p, s.p + s.n, depth + 1, &key, &key_ascii, &a) < 0) {
                any_clear(&a);
                return -1;
            }
            PyObject *v = any_natural(d, &a);
            any_clear(&a);
            if (!v) return -1;
            PyObject *k = get_str(d, key, key_ascii);
            if (!k) {
                Py_DECREF(v);
                return -1;
            }
            int r = PyDict_SetItem(dict, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (r < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

/* Parse one top-level attribute KeyValue and append it (possibly as a dropped marker) to out. */
static int parse_attr(Dec *d, const uint8_t *p, const uint8_t *end, int depth, AttrList *out)
{
    AnyState a = {0};
    Slice key;
    int key_ascii;
    if (parse_kv_raw(d, p, end, depth, &key, &key_ascii, &a) < 0) goto fail;
    if (key.n == 0) { /* empty keys are dropped */
        any_clear(&a);
        return 0;
    }
    uint8_t type;
    PyObject *val;
    if (any_attr(d, &a, &type, &val) < 0) goto fail;
    uint8_t src = (uint8_t)a.kase;
    any_clear(&a);
    Py_ssize_t kid = get_key(d, key, key_ascii);
    if (kid < 0 || grow((void **)&out->v, &out->cap, out->n + 1, sizeof(Attr)) < 0) {
        Py_XDECREF(val);
        return -1;
    }
    out->v[out->n++] = (Attr){(uint32_t)kid, type, src, val};
    return 0;
fail:
    any_clear(&a);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Rows                                                                                        */

static inline void row_begin(Dec *d)
{
    d->nrt = 0;
    if (++d->stamp == 0) { /* wrapped: reset every key's stamp */
        for (size_t i = 0; i < d->nkeys; i++) d->keys[i].stamp = 0;
        d->stamp = 1;
    }
}

/* Set key = value for the current row; a later level overrides an earlier one.  A dropped value
 * (T_NONE) does not remove an earlier value of the same key. */
static inline int row_add(Dec *d, uint32_t key, uint8_t type, PyObject *val)
{
    if (type == T_NONE) return 0;
    KeyEnt *k = &d->keys[key];
    if (k->stamp == d->stamp) {
        d->rt[k->slot].type = type;
        d->rt[k->slot].val = val;
        return 0;
    }
    if (d->nrt == d->caprt && grow((void **)&d->rt, &d->caprt, d->nrt + 1, sizeof(RowAttr)) < 0)
        return -1;
    k->stamp = d->stamp;
    k->slot = (uint32_t)d->nrt;
    d->rt[d->nrt++] = (RowAttr){key, type, val};
    return 0;
}

static inline int row_add_list(Dec *d, const AttrList *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const Attr *a = &l->v[i];
        if (row_add(d, a->key, a->type, a->val) < 0) return -1;
    }
    return 0;
}

/* A per-request limit is passed: ValueError(msg), -1 (the whole request is refused). */
static int limit_err(const char *msg)
{
    PyErr_SetString(PyExc_ValueError, msg);
    return -1;
}

/* Columns x (rows written + the one being written) past MAX_SLOTS. */
static inline int slots_over(const Dec *d)
{
    return (uint64_t)d->nslot_cols * ((uint64_t)d->nrows + 1) > (uint64_t)MAX_SLOTS;
}

/* Count a key against MAX_ATTR_KEYS the first time it gets a column (the reference:
 * RowWriter.column). */
static int count_key(Dec *d, uint32_t key)
{
    KeyEnt *k = &d->keys[key];
    if (k->counted) return 0;
    k->counted = 1;
    if (++d->nattr_keys > MAX_ATTR_KEYS) return limit_err(MSG_TOO_MANY_KEYS);
    return 0;
}

/* Count a (key, type) column the first time the reference's RowWriter.column would make it: the
 * key against MAX_ATTR_KEYS, then columns x rows against MAX_SLOTS. */
static inline int count_col(Dec *d, uint32_t key, uint8_t type)
{
    KeyEnt *k = &d->keys[key];
    uint8_t bit = (uint8_t)(1u << type);
    if (k->slots & bit) return 0;
    if (count_key(d, key) < 0) return -1;
    k = &d->keys[key];
    k->slots |= bit;
    d->nslot_cols++;
    if (slots_over(d)) return limit_err(MSG_TOO_MANY_SLOTS);
    return 0;
}

/* The columns of a compacted resource/scope list (the reference: RowWriter.base/scope_base). */
static int count_cols(Dec *d, const AttrList *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (count_col(d, l->v[i].key, l->v[i].type) < 0) return -1;
    return 0;
}

/* row_add for a row's own attribute values (not the resource's or scope's, counted when their
 * lists were compacted): every value that is not dropped counts its (key, type) column, in wire
 * order, as the reference's put_* do. */
static inline int row_add_own(Dec *d, uint32_t key, uint8_t type, PyObject *val)
{
    if (type == T_NONE) return 0;
    if (count_col(d, key, type) < 0) return -1;
    return row_add(d, key, type, val);
}

static inline int row_add_own_list(Dec *d, const AttrList *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const Attr *a = &l->v[i];
        if (row_add_own(d, a->key, a->type, a->val) < 0) return -1;
    }
    return 0;
}

/* Start a row (row index d->nrows): MAX_ROWS first, as the reference's reserve. */
static inline int row_start(Dec *d)
{
    if (d->nrows >= MAX_ROWS) return limit_err(MSG_TOO_MANY_ROWS);
    row_begin(d);
    return 0;
}

/* Reduce a resource/scope attribute list to what it contributes to every row: one entry per key,
 * the last non-dropped value winning (in the position of the key's first occurrence), dropped
 * values and (for a resource) service.name removed.  Done once per resource/scope, so a list with
 * many duplicate keys costs its length once, not once per row. */
static void attrs_compact(Dec *d, AttrList *l, int drop_service)
{
    row_begin(d); /* a fresh stamp: marks keys seen in this list */
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        Attr a = l->v[i];
        if (a.type == T_NONE || (drop_service && a.key == KEY_SERVICE_NAME)) {
            Py_XDECREF(a.val);
            continue;
        }
        KeyEnt *k = &d->keys[a.key];
        if (k->stamp == d->stamp) {
            Attr *prev = &l->v[k->slot];
            Py_XSETREF(prev->val, a.val);
            prev->type = a.type;
            prev->src = a.src;
            continue;
        }
        k->stamp = d->stamp;
        k->slot = (uint32_t)n;
        l->v[n++] = a;
    }
    l->n = n;
}

/* Commit the current row's attributes into the attribute columns (row index d->nrows).  Every
 * key here was counted already (count_col), so this only allocates. */
static int row_commit_attrs(Dec *d)
{
    uint32_t row = (uint32_t)d->nrows;
    for (size_t i = 0; i < d->nrt; i++) {
        RowAttr *ra = &d->rt[i];
        if (ra->type == T_NONE) continue;
        KeyEnt *k = &d->keys[ra->key];
        int32_t ci = k->col[ra->type - 1];
        if (ci < 0) {
            if (grow((void **)&d->cols, &d->capcols, d->ncols + 1, sizeof(Column)) < 0) return -1;
            ci = (int32_t)d->ncols++;
            d->cols[ci] = (Column){ra->key, ra->type, NULL};
            k = &d->keys[ra->key];
            k->col[ra->type - 1] = ci;
        }
        if (d->ncells == d->capcells &&
            grow((void **)&d->cells, &d->capcells, d->ncells + 1, sizeof(Cell)) < 0)
            return -1;
        Py_INCREF(ra->val);
        d->cells[d->ncells++] = (Cell){(uint32_t)ci, row, ra->val};
    }
    return 0;
}

/* Append a row of fixed values (new references, stolen; NULL means an allocation failed). */
static int row_emit(Dec *d, PyObject *v[NFIX])
{
    int bad = 0;
    for (int i = 0; i < NFIX; i++)
        if (!v[i]) bad = 1;
    if (!bad && d->nrows >= UINT32_MAX - 1) {
        PyErr_NoMemory();
        bad = 1;
    }
    /* limits, before anything of the row is stored (rows, keys and the slots of new columns
     * were checked as the row was built: row_start, row_add_own): cells, then the row's slots
     * (one add and compare, one multiply and compare per row) */
    if (!bad && d->ncells + d->nrt > MAX_CELLS) {
        limit_err(MSG_TOO_MANY_CELLS);
        bad = 1;
    }
    if (!bad && slots_over(d)) {
        limit_err(MSG_TOO_MANY_SLOTS);
        bad = 1;
    }
    if (!bad && d->nrows == d->caprows &&
        grow((void **)&d->rows, &d->caprows, d->nrows + 1, sizeof(d->rows[0])) < 0)
        bad = 1;
    if (!bad && row_commit_attrs(d) < 0) bad = 1;
    if (bad) {
        for (int i = 0; i < NFIX; i++) Py_XDECREF(v[i]);
        return -1;
    }
    memcpy(d->rows[d->nrows], v, sizeof(PyObject *) * NFIX);
    d->nrows++;
    return 0;
}

#define INT64_MAX_U ((uint64_t)INT64_MAX)
/* OTLP times are fixed64, the store's int64: clamp past 2^63 - 1 (as the reference does). */
static inline uint64_t clamp_ns(uint64_t t)
{
    return t > INT64_MAX_U ? INT64_MAX_U : t;
}

static inline PyObject *ref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Resource / scope / span                                                                     */

typedef struct {
    AttrList attrs;
    PyObject *dataset, *service; /* owned */
    int routable;                /* dataset is a valid dataset name (else: spans rejected) */
} Res;

typedef struct {
    AttrList attrs;
    Slice name, version;
    int name_ascii, version_ascii;
    PyObject *lib_name, *lib_version; /* owned */
} Scope;

static int parse_resource(Dec *d, const uint8_t *p, const uint8_t *end, int depth, Res *r)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        uint64_t v;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_attr(d, s.p, s.p + s.n, depth + 1, &r->attrs) < 0) return -1;
            continue;
        }
        if (fn == 2 && wt == WT_VARINT) {
            if (get_varint(d, &p, end, &v) < 0) return -1;
            continue;
        }
        if (fn == 3 && wt == WT_LEN) { /* entity_refs */
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (validate_msg(d, s.p, s.p + s.n, M_ENTITY, depth + 1) < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

/* 1 when a stripped, non-empty service.name is a valid dataset name, 0 when the catalog's rule
 * (tenancy.names.validate_dataset_name) refuses it, -1 on any other error. */
static int name_routable(PyObject *s)
{
    PyObject *ok = PyObject_CallOneArg(g_validate_dataset_name, s);
    if (ok) {
        Py_DECREF(ok);
        return 1;
    }
    if (!PyErr_ExceptionMatches(g_invalid_name)) return -1;
    PyErr_Clear();
    return 0;
}

/* dataset/service from the resource's service.name (the last one; a non-empty string). */
static int resource_service(Dec *d, Res *r)
{
    (void)d;
    PyObject *svc = NULL;
    for (size_t i = r->attrs.n; i-- > 0;) {
        Attr *a = &r->attrs.v[i];
        if (a->key != KEY_SERVICE_NAME || a->type == T_NONE) continue;
        if (a->type == T_S) svc = a->val; /* any str-typed value: bytes (base64), JSON too */
        break;
    }
    if (svc) {
        PyObject *st = PyObject_CallMethodNoArgs(svc, g_str_strip);
        if (!st) return -1;
        if (PyUnicode_GET_LENGTH(st) > 0) {
            r->dataset = st;
            r->service = ref(st);
            r->routable = name_routable(st);
            return r->routable < 0 ? -1 : 0;
        }
        Py_DECREF(st);
    }
    r->dataset = ref(g_unknown_service);
    r->service = ref(Py_None);
    r->routable = 1;
    return 0;
}

static int parse_scope(Dec *d, const uint8_t *p, const uint8_t *end, int depth, Scope *sc)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        uint64_t v;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &sc->name) < 0 || utf8_check(d, sc->name, &sc->name_ascii) < 0)
                return -1;
            continue;
        }
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &sc->version) < 0 ||
                utf8_check(d, sc->version, &sc->version_ascii) < 0)
                return -1;
            continue;
        }
        if (fn == 3 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_attr(d, s.p, s.p + s.n, depth + 1, &sc->attrs) < 0) return -1;
            continue;
        }
        if (fn == 4 && wt == WT_VARINT) {
            if (get_varint(d, &p, end, &v) < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

static int parse_status(Dec *d, const uint8_t *p, const uint8_t *end, int depth, int32_t *code,
                        Slice *msg, int *msg_ascii)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    while (p < end) {
        uint32_t fn;
        int wt;
        uint64_t v;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, msg) < 0 || utf8_check(d, *msg, msg_ascii) < 0) return -1;
            continue;
        }
        if (fn == 3 && wt == WT_VARINT) {
            if (get_varint(d, &p, end, &v) < 0) return -1;
            *code = (int32_t)(uint32_t)v;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

/* Shared per-span objects for its event and link rows. */
typedef struct {
    Res *res;
    Scope *sc;
    PyObject *trace_id, *span_id, *start, *samplerate;
} SpanCtx;

static int emit_event(Dec *d, const uint8_t *p, const uint8_t *end, int depth, SpanCtx *c,
                      int *is_exception)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    uint64_t t = 0, v;
    Slice name = {p, 0};
    int name_ascii = 1;
    attrs_clear(&d->tmp_attrs);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_I64) {
            if (rd_fixed64(d, &p, end, &t) < 0) return -1;
            continue;
        }
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &name) < 0 || utf8_check(d, name, &name_ascii) < 0) return -1;
            continue;
        }
        if (fn == 3 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_attr(d, s.p, s.p + s.n, depth + 1, &d->tmp_attrs) < 0) return -1;
            continue;
        }
        if (fn == 4 && wt == WT_VARINT) {
            if (get_varint(d, &p, end, &v) < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    int exc = slice_eq(name, "exception", 9);
    *is_exception = exc;
    if (row_start(d) < 0 || row_add_list(d, &c->res->attrs) < 0 ||
        row_add_own_list(d, &d->tmp_attrs) < 0)
        return -1;
    PyObject *r[NFIX];
    r[C_DATASET] = ref(c->res->dataset);
    r[C_TS] = PyLong_FromUnsignedLongLong(clamp_ns(t));
    r[C_DUR] = ref(Py_None);
    r[C_TRACE] = ref(c->trace_id);
    r[C_SPAN] = ref(Py_None);
    r[C_PARENT] = ref(c->span_id);
    r[C_NAME] = get_str(d, name, name_ascii);
    r[C_SERVICE] = ref(c->res->service);
    r[C_KIND] = ref(Py_None);
    r[C_SCODE] = ref(Py_None);
    r[C_SMSG] = ref(Py_None);
    r[C_ERROR] = ref(exc ? Py_True : Py_None);
    r[C_SIGNAL] = ref(g_sig_event);
    r[C_LIBN] = ref(c->sc->lib_name);
    r[C_LIBV] = ref(c->sc->lib_version);
    r[C_SAMPLE] = ref(c->samplerate);
    r[C_BODY] = ref(Py_None);
    r[C_SEVT] = ref(Py_None);
    r[C_SEVN] = ref(Py_None);
    int rc = row_emit(d, r);
    attrs_clear(&d->tmp_attrs);
    return rc;
}

static int emit_link(Dec *d, const uint8_t *p, const uint8_t *end, int depth, SpanCtx *c)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p, "nesting too deep"), -1);
    Slice tid = {p, 0}, sid = {p, 0};
    uint64_t v;
    attrs_clear(&d->tmp_attrs);
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        int ascii;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &tid) < 0) return -1;
            continue;
        }
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &sid) < 0) return -1;
            continue;
        }
        if (fn == 3 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0 || utf8_check(d, s, &ascii) < 0) return -1;
            continue;
        }
        if (fn == 4 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_attr(d, s.p, s.p + s.n, depth + 1, &d->tmp_attrs) < 0) return -1;
            continue;
        }
        if (fn == 5 && wt == WT_VARINT) {
            if (get_varint(d, &p, end, &v) < 0) return -1;
            continue;
        }
        if (fn == 6 && wt == WT_I32) {
            if (rd_fixed32(d, &p, end) < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    if (tid.n != 16 || all_zero(tid) || sid.n != 8 || all_zero(sid)) {
        attrs_clear(&d->tmp_attrs); /* a link that points nowhere is left out (not counted) */
        return 0;
    }
    PyObject *thex = to_hex(tid);
    PyObject *shex = thex ? to_hex(sid) : NULL;
    int rc = -1;
    if (!shex) goto done;
    if (row_start(d) < 0 || row_add_list(d, &c->res->attrs) < 0 ||
        row_add_own(d, KEY_LINK_TRACE, T_S, thex) < 0 ||
        row_add_own(d, KEY_LINK_SPAN, T_S, shex) < 0 || row_add_own_list(d, &d->tmp_attrs) < 0)
        goto done;
    PyObject *r[NFIX];
    r[C_DATASET] = ref(c->res->dataset);
    r[C_TS] = ref(c->start);
    r[C_DUR] = ref(Py_None);
    r[C_TRACE] = ref(c->trace_id);
    r[C_SPAN] = ref(Py_None);
    r[C_PARENT] = ref(c->span_id);
    r[C_NAME] = ref(Py_None);
    r[C_SERVICE] = ref(c->res->service);
    r[C_KIND] = ref(Py_None);
    r[C_SCODE] = ref(Py_None);
    r[C_SMSG] = ref(Py_None);
    r[C_ERROR] = ref(Py_None);
    r[C_SIGNAL] = ref(g_sig_link);
    r[C_LIBN] = ref(c->sc->lib_name);
    r[C_LIBV] = ref(c->sc->lib_version);
    r[C_SAMPLE] = ref(c->samplerate);
    r[C_BODY] = ref(Py_None);
    r[C_SEVT] = ref(Py_None);
    r[C_SEVN] = ref(Py_None);
    rc = row_emit(d, r);
done:
    Py_XDECREF(thex);
    Py_XDECREF(shex);
    attrs_clear(&d->tmp_attrs);
    return rc;
}

static int parse_span(Dec *d, const uint8_t *p0, const uint8_t *end, int depth, Res *res, Scope *sc)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p0, "nesting too deep"), -1);
    Slice tid = {p0, 0}, sid = {p0, 0}, pid = {p0, 0}, name = {p0, 0}, smsg = {p0, 0};
    int name_ascii = 1, smsg_ascii = 1, ascii;
    int32_t kind = 0, scode = 0;
    uint64_t start = 0, stop = 0, v;
    const uint8_t *first_attr = NULL, *first_event = NULL, *first_link = NULL;
    const uint8_t *p = p0;

    /* pass A: scalars, status, validation of everything except attributes/events/links */
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        const uint8_t *at = p;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        switch (fn) {
        case 1:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &tid) < 0) return -1;
            continue;
        case 2:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &sid) < 0) return -1;
            continue;
        case 3:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &s) < 0 || utf8_check(d, s, &ascii) < 0) return -1;
            continue;
        case 4:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &pid) < 0) return -1;
            continue;
        case 5:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &name) < 0 || utf8_check(d, name, &name_ascii) < 0) return -1;
            continue;
        case 6:
            if (wt != WT_VARINT) break;
            if (get_varint(d, &p, end, &v) < 0) return -1;
            kind = (int32_t)(uint32_t)v;
            continue;
        case 7:
            if (wt != WT_I64) break;
            if (rd_fixed64(d, &p, end, &start) < 0) return -1;
            continue;
        case 8:
            if (wt != WT_I64) break;
            if (rd_fixed64(d, &p, end, &stop) < 0) return -1;
            continue;
        case 9:
        case 11:
        case 13:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (fn == 9 && !first_attr) first_attr = at;
            if (fn == 11 && !first_event) first_event = at;
            if (fn == 13 && !first_link) first_link = at;
            continue;
        case 10:
        case 12:
        case 14:
            if (wt != WT_VARINT) break;
            if (get_varint(d, &p, end, &v) < 0) return -1;
            continue;
        case 15:
            if (wt != WT_LEN) break;
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_status(d, s.p, s.p + s.n, depth + 1, &scode, &smsg, &smsg_ascii) < 0) return -1;
            continue;
        case 16:
            if (wt != WT_I32) break;
            if (rd_fixed32(d, &p, end) < 0) return -1;
            continue;
        default:
            break;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
    }

    if (tid.n != 16 || all_zero(tid) || sid.n != 8 || all_zero(sid)) {
        d->rejected++;
        /* still must be well-formed, as ParseFromString would check */
        return validate_msg(d, p0, end, M_SPAN, depth);
    }

    /* pass B: span attributes */
    attrs_clear(&d->span_attrs);
    if (first_attr) {
        for (p = first_attr; p < end;) {
            uint32_t fn;
            int wt;
            Slice s;
            if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
            if (fn == 9 && wt == WT_LEN) {
                if (rd_len(d, &p, end, &s) < 0) return -1;
                if (parse_attr(d, s.p, s.p + s.n, depth + 1, &d->span_attrs) < 0) return -1;
                continue;
            }
            if (skip_field(d, &p, end, fn, wt, depth) < 0) return -1;
        }
    }

    start = clamp_ns(start);
    stop = clamp_ns(stop);
    SpanCtx c = {res, sc, NULL, NULL, NULL, NULL};
    int rc = -1;
    c.samplerate = ref(g_one);
    for (size_t i = d->span_attrs.n; i-- > 0;) {
        Attr *a = &d->span_attrs.v[i];
        if (a->key != KEY_SAMPLE_RATE || a->type == T_NONE) continue;
        if (a->type == T_I && PyLong_AsLongLong(a->val) > 0) Py_SETREF(c.samplerate, ref(a->val));
        break;
    }
    c.trace_id = PyBytes_FromStringAndSize((const char *)tid.p, 16);
    c.span_id = PyLong_FromUnsignedLongLong(be64(sid.p));
    c.start = PyLong_FromUnsignedLongLong(start);
    if (!c.trace_id || !c.span_id || !c.start) goto done;

    if (row_start(d) < 0 || row_add_list(d, &res->attrs) < 0 || row_add_list(d, &sc->attrs) < 0 ||
        row_add_own_list(d, &d->span_attrs) < 0)
        goto done;
    PyObject *r[NFIX];
    size_t span_row = d->nrows;
    r[C_DATASET] = ref(res->dataset);
    r[C_TS] = ref(c.start);
    r[C_DUR] = PyLong_FromUnsignedLongLong(stop > start ? stop - start : 0);
    r[C_TRACE] = ref(c.trace_id);
    r[C_SPAN] = ref(c.span_id);
    r[C_PARENT] = (pid.n != 8 || all_zero(pid)) ? ref(Py_None) : PyLong_FromUnsignedLongLong(be64(pid.p));
    r[C_NAME] = get_str(d, name, name_ascii);
    r[C_SERVICE] = ref(res->service);
    r[C_KIND] = ref(g_kinds[(kind >= 0 && kind <= 5) ? kind : 0]);
    r[C_SCODE] = PyLong_FromLong(scode);
    r[C_SMSG] = smsg.n ? get_str(d, smsg, smsg_ascii) : ref(Py_None);
    r[C_ERROR] = ref(scode == 2 ? Py_True : Py_False);
    r[C_SIGNAL] = ref(g_sig_span);
    r[C_LIBN] = ref(sc->lib_name);
    r[C_LIBV] = ref(sc->lib_version);
    r[C_SAMPLE] = ref(c.samplerate);
    r[C_BODY] = ref(Py_None);
    r[C_SEVT] = ref(Py_None);
    r[C_SEVN] = ref(Py_None);
    if (row_emit(d, r) < 0) goto done;

    /* pass C: events (span error if one is named "exception") */
    if (first_event) {
        int any_exc = 0;
        for (p = first_event; p < end;) {
            uint32_t fn;
            int wt;
            Slice s;
            if (rd_tag(d, &p, end, &fn, &wt) < 0) goto done;
            if (fn == 11 && wt == WT_LEN) {
                int exc = 0;
                if (rd_len(d, &p, end, &s) < 0) goto done;
                if (emit_event(d, s.p, s.p + s.n, depth + 1, &c, &exc) < 0) goto done;
                any_exc |= exc;
                continue;
            }
            if (skip_field(d, &p, end, fn, wt, depth) < 0) goto done;
        }
        if (any_exc && scode != 2) Py_SETREF(d->rows[span_row][C_ERROR], ref(Py_True));
    }

    /* pass D: links */
    if (first_link) {
        for (p = first_link; p < end;) {
            uint32_t fn;
            int wt;
            Slice s;
            if (rd_tag(d, &p, end, &fn, &wt) < 0) goto done;
            if (fn == 13 && wt == WT_LEN) {
                if (rd_len(d, &p, end, &s) < 0) goto done;
                if (emit_link(d, s.p, s.p + s.n, depth + 1, &c) < 0) goto done;
                continue;
            }
            if (skip_field(d, &p, end, fn, wt, depth) < 0) goto done;
        }
    }
    rc = 0;
done:
    Py_XDECREF(c.trace_id);
    Py_XDECREF(c.span_id);
    Py_XDECREF(c.start);
    Py_XDECREF(c.samplerate);
    attrs_clear(&d->span_attrs);
    return rc;
}

static int parse_scope_spans(Dec *d, const uint8_t *p0, const uint8_t *end, int depth, Res *res)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p0, "nesting too deep"), -1);
    Scope sc;
    memset(&sc, 0, sizeof sc);
    sc.name.p = sc.version.p = p0;
    sc.name_ascii = sc.version_ascii = 1;
    int rc = -1;
    const uint8_t *p = p0, *first_span = NULL;
    /* pass 1: scope (merged over occurrences), schema_url, unknown fields */
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        int ascii;
        const uint8_t *at = p;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) goto done;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) goto done;
            if (parse_scope(d, s.p, s.p + s.n, depth + 1, &sc) < 0) goto done;
            continue;
        }
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) goto done;
            if (!first_span) first_span = at;
            continue;
        }
        if (fn == 3 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0 || utf8_check(d, s, &ascii) < 0) goto done;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) goto done;
    }
    attrs_compact(d, &sc.attrs, 0);
    if (count_cols(d, &sc.attrs) < 0) goto done;
    sc.lib_name = sc.name.n ? get_str(d, sc.name, sc.name_ascii) : ref(Py_None);
    if (!sc.lib_name) goto done;
    sc.lib_version = sc.version.n ? get_str(d, sc.version, sc.version_ascii) : ref(Py_None);
    if (!sc.lib_version) goto done;
    /* pass 2: spans */
    if (first_span) {
        for (p = first_span; p < end;) {
            uint32_t fn;
            int wt;
            Slice s;
            if (rd_tag(d, &p, end, &fn, &wt) < 0) goto done;
            if (fn == 2 && wt == WT_LEN) {
                if (rd_len(d, &p, end, &s) < 0) goto done;
                if (parse_span(d, s.p, s.p + s.n, depth + 1, res, &sc) < 0) goto done;
                continue;
            }
            if (skip_field(d, &p, end, fn, wt, depth) < 0) goto done;
        }
    }
    rc = 0;
done:
    attrs_free(&sc.attrs);
    Py_XDECREF(sc.lib_name);
    Py_XDECREF(sc.lib_version);
    return rc;
}

/* The ScopeSpans of a resource whose service.name is not a valid dataset name: its spans are
 * rejected (counted) after the checks ParseFromString makes on all of it. */
static int reject_scope_spans(Dec *d, const uint8_t *p, const uint8_t *end, int depth)
{
    if (validate_msg(d, p, end, M_SCOPE_SPANS, depth) < 0) return -1;
    while (p < end) {
        uint32_t fn;
        int wt;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 2 && wt == WT_LEN) d->rejected_service++;
        if (skip_value(d, &p, end, fn, wt, depth) < 0) return -1;
    }
    return 0;
}

static int parse_resource_spans(Dec *d, const uint8_t *p0, const uint8_t *end, int depth)
{
    if (depth > MAX_DEPTH) return (wire_err(d, p0, "nesting too deep"), -1);
    Res res;
    memset(&res, 0, sizeof res);
    int rc = -1;
    const uint8_t *p = p0, *first_ss = NULL;
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        int ascii;
        const uint8_t *at = p;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) goto done;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) goto done;
            if (parse_resource(d, s.p, s.p + s.n, depth + 1, &res) < 0) goto done;
            continue;
        }
        if (fn == 2 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) goto done;
            if (!first_ss) first_ss = at;
            continue;
        }
        if (fn == 3 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0 || utf8_check(d, s, &ascii) < 0) goto done;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, depth) < 0) goto done;
    }
    if (resource_service(d, &res) < 0) goto done;
    if (res.routable) {
        attrs_compact(d, &res.attrs, 1);
        if (count_cols(d, &res.attrs) < 0) goto done;
    }
    if (first_ss) {
        for (p = first_ss; p < end;) {
            uint32_t fn;
            int wt;
            Slice s;
            if (rd_tag(d, &p, end, &fn, &wt) < 0) goto done;
            if (fn == 2 && wt == WT_LEN) {
                if (rd_len(d, &p, end, &s) < 0) goto done;
                if (res.routable ? parse_scope_spans(d, s.p, s.p + s.n, depth + 1, &res)
                                 : reject_scope_spans(d, s.p, s.p + s.n, depth + 1))
                    goto done;
                continue;
            }
            if (skip_field(d, &p, end, fn, wt, depth) < 0) goto done;
        }
    }
    rc = 0;
done:
    attrs_free(&res.attrs);
    Py_XDECREF(res.dataset);
    Py_XDECREF(res.service);
    return rc;
}

static int parse_request(Dec *d, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint32_t fn;
        int wt;
        Slice s;
        if (rd_tag(d, &p, end, &fn, &wt) < 0) return -1;
        if (fn == 1 && wt == WT_LEN) {
            if (rd_len(d, &p, end, &s) < 0) return -1;
            if (parse_resource_spans(d, s.p, s.p + s.n, 1) < 0) return -1;
            continue;
        }
        if (skip_field(d, &p, end, fn, wt, 0) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Entry point                                                                                 */

/* Buffers are kept between calls (in g_scratch) unless they grew past this: re-faulting freshly
 * mapped scratch memory on every call was measured to cost ~40% of the decode time. */
#define SCRATCH_KEEP_BYTES (4u << 20)

static void buf_trim(void **buf, size_t *cap, size_t el)
{
    if (*cap * el > SCRATCH_KEEP_BYTES) {
        PyMem_Free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}

/* Drop every reference the call holds and reset the counts; keep (modest) buffers. */
static void dec_end(Dec *d)
{
    for (size_t i = 0; i < d->nrows; i++)
        for (int c = 0; c < NFIX; c++) Py_XDECREF(d->rows[i][c]);
    d->nrows = 0;
    for (size_t i = 0; i < d->ncells; i++) Py_XDECREF(d->cells[i].v);
    d->ncells = 0;
    d->ncols = 0;
    for (size_t i = 0; i < d->nents; i++) Py_XDECREF(d->ents[i].str);
    d->nents = 0;
    d->nkeys = 0;
    if (d->vcache)
        for (size_t i = 0; i < VCACHE_SIZE; i++) {
            Py_CLEAR(d->vcache[i].str);
            d->vcache[i].hits = 0;
        }
    d->nrt = 0;
    d->nattr_keys = 0;
    d->nslot_cols = 0;
    attrs_clear(&d->span_attrs);
    attrs_clear(&d->tmp_attrs);
    d->base = NULL;
    d->err = NULL;
    d->rejected = 0;
    d->rejected_service = 0;

    buf_trim((void **)&d->rows, &d->caprows, sizeof(d->rows[0]));
    buf_trim((void **)&d->cells, &d->capcells, sizeof(Cell));
    buf_trim((void **)&d->cols, &d->capcols, sizeof(Column));
    buf_trim((void **)&d->ents, &d->capents, sizeof(StrEnt));
    buf_trim((void **)&d->keys, &d->capkeys, sizeof(KeyEnt));
    buf_trim((void **)&d->rt, &d->caprt, sizeof(RowAttr));
    buf_trim((void **)&d->span_attrs.v, &d->span_attrs.cap, sizeof(Attr));
    buf_trim((void **)&d->tmp_attrs.v, &d->tmp_attrs.cap, sizeof(Attr));
    if (d->nslots > 4096) {
        PyMem_Free(d->slots);
        d->slots = NULL;
        d->nslots = 0;
    }
}

/* Free every buffer (after dec_end). */
static void dec_destroy(Dec *d)
{
    PyMem_Free(d->rows);
    PyMem_Free(d->cells);
    PyMem_Free(d->cols);
    PyMem_Free(d->ents);
    PyMem_Free(d->slots);
    PyMem_Free(d->keys);
    PyMem_Free(d->kcache);
    PyMem_Free(d->vcache);
    PyMem_Free(d->rt);
    PyMem_Free(d->span_attrs.v);
    PyMem_Free(d->tmp_attrs.v);
    memset(d, 0, sizeof *d);
}

/* Start a call on d: zeroed (fresh) or left by dec_end (scratch). */
static int dec_begin(Dec *d, const uint8_t *base)
{
    d->base = base;
    d->err = NULL;
    d->err_off = -1;
    d->rejected = 0;
    d->rejected_service = 0;
    d->nattr_keys = 0;
    d->nslot_cols = 0;
    if (!d->slots) {
        d->nslots = 64;
        d->slots = PyMem_Calloc(d->nslots, sizeof(uint32_t));
    } else {
        memset(d->slots, 0, d->nslots * sizeof(uint32_t));
    }
    if (!d->kcache) d->kcache = PyMem_Malloc(KCACHE_SIZE * sizeof(KCacheEnt));
    if (!d->vcache) d->vcache = PyMem_Calloc(VCACHE_SIZE, sizeof(VCacheEnt));
    if (!d->slots || !d->kcache || !d->vcache) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < KCACHE_SIZE; i++) d->kcache[i].key = -1;
    for (int i = 0; i < NSPECIAL; i++) {
        Slice s = {(const uint8_t *)SPECIAL_KEYS[i], (Py_ssize_t)strlen(SPECIAL_KEYS[i])};
        if (get_key(d, s, 1) != i) return -1;
    }
    return 0;
}

static Dec g_scratch;
static int g_scratch_busy; /* the GIL guards it; busy when a decode calls back into Python */

static PyObject *build_result(Dec *d)
{
    PyObject *cols = NULL, *attrs = NULL, *msg = NULL, *n = NULL, *rej = NULL;
    Py_ssize_t nrows = (Py_ssize_t)d->nrows;
    cols = PyDict_New();
    if (!cols) goto fail;
    for (int c = 0; c < NFIX; c++) {
        PyObject *l = PyList_New(nrows);
        if (!l) goto fail;
        for (Py_ssize_t i = 0; i < nrows; i++) {
            PyList_SET_ITEM(l, i, d->rows[i][c]);
            d->rows[i][c] = NULL;
        }
        int r = PyDict_SetItem(cols, g_fix_names[c], l);
        Py_DECREF(l);
        if (r < 0) goto fail;
    }
    attrs = PyDict_New();
    if (!attrs) goto fail;
    for (size_t ci = 0; ci < d->ncols; ci++) {
        Column *c = &d->cols[ci];
        PyObject *l = PyList_New(nrows);
        if (!l) goto fail;
        for (Py_ssize_t i = 0; i < nrows; i++) PyList_SET_ITEM(l, i, ref(Py_None));
        PyObject *key = PyTuple_Pack(2, d->keys[c->key].str, g_type_names[c->type]);
        if (!key) {
            Py_DECREF(l);
            goto fail;
        }
        int r = PyDict_SetItem(attrs, key, l);
        Py_DECREF(key);
        c->list = l; /* borrowed: the dict holds it */
        Py_DECREF(l);
        if (r < 0) goto fail;
    }
    for (size_t j = 0; j < d->ncells; j++) {
        Cell *cell = &d->cells[j];
        PyObject *l = d->cols[cell->col].list;
        PyObject *old = PyList_GET_ITEM(l, cell->row);
        PyList_SET_ITEM(l, cell->row, cell->v);
        Py_DECREF(old);
        cell->v = NULL;
    }
    if (d->rejected && d->rejected_service)
        msg = PyUnicode_FromFormat("%zd " MSG_REJECTED_IDS "; %zd " MSG_REJECTED_SERVICE,
                                   d->rejected, d->rejected_service);
    else if (d->rejected)
        msg = PyUnicode_FromFormat("%zd " MSG_REJECTED_IDS, d->rejected);
    else if (d->rejected_service)
        msg = PyUnicode_FromFormat("%zd " MSG_REJECTED_SERVICE, d->rejected_service);
    else
        msg = ref(g_empty_str);
    n = PyLong_FromSsize_t(nrows);
    rej = PyLong_FromSsize_t(d->rejected + d->rejected_service);
    if (!msg || !n || !rej) goto fail;
    PyObject *res = PyTuple_Pack(5, cols, attrs, n, rej, msg);
    Py_DECREF(cols);
    Py_DECREF(attrs);
    Py_DECREF(n);
    Py_DECREF(rej);
    Py_DECREF(msg);
    return res;
fail:
    Py_XDECREF(cols);
    Py_XDECREF(attrs);
    Py_XDECREF(msg);
    Py_XDECREF(n);
    Py_XDECREF(rej);
    return NULL;
}

static PyObject *decode_traces(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *base = (const uint8_t *)view.buf;
    Dec local;
    Dec *d;
#ifdef Py_GIL_DISABLED
    int own = 1; /* no GIL to guard the shared scratch state */
#else
    int own = g_scratch_busy;
#endif
    if (own) { /* re-entered (another thread, while this one runs Python code): a private state */
        memset(&local, 0, sizeof local);
        d = &local;
    } else {
        g_scratch_busy = 1;
        d = &g_scratch;
    }
    PyObject *result = NULL;
    if (dec_begin(d, base) < 0) goto out;
    if (parse_request(d, base, base + view.len) < 0) {
        if (!PyErr_Occurred()) {
            if (d->err_off >= 0)
                PyErr_Format(PyExc_ValueError, "malformed OTLP protobuf: %s (at byte %zd)",
                             d->err ? d->err : "invalid data", d->err_off);
            else
                PyErr_Format(PyExc_ValueError, "malformed OTLP protobuf: %s",
                             d->err ? d->err : "invalid data");
        }
        goto out;
    }
    result = build_result(d);
out:
    dec_end(d);
    if (own)
        dec_destroy(d);
    else
        g_scratch_busy = 0;
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_traces", decode_traces, METH_O,
     "decode_traces(data) -> (cols, attrs, n, rejected, error_message)\n\n"
     "Decode a protobuf ExportTraceServiceRequest into EventBatch columns. Raises ValueError on "
     "malformed input and on a request past a per-request limit (MAX_ROWS, MAX_ATTR_KEYS, "
     "MAX_CELLS, MAX_SLOTS)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_otlp_fast",
    "C decoder for OTLP trace exports (protobuf) into tracehive EventBatch columns.", -1, methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

PyMODINIT_FUNC PyInit__otlp_fast(void)
{
    static const char *const kinds[6] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};
    static const char *const types[5] = {"", "s", "i", "f", "b"};
    for (int i = 0; i < NFIX; i++)
        if (!(g_fix_names[i] = intern(FIX_NAMES[i]))) return NULL;
    for (int i = 0; i < 5; i++)
        if (!(g_type_names[i] = intern(types[i]))) return NULL;
    for (int i = 0; i < 6; i++)
        if (!(g_kinds[i] = intern(kinds[i]))) return NULL;
    if (!(g_sig_span = intern("span")) || !(g_sig_event = intern("span_event")) ||
        !(g_sig_link = intern("link")) || !(g_unknown_service = intern("unknown_service")) ||
        !(g_empty_str = intern("")) || !(g_str_strip = intern("strip")) ||
        !(g_one = PyLong_FromLong(1)))
        return NULL;

    PyObject *names = PyImport_ImportModule("tracehive.tenancy.names");
    if (!names) return NULL;
    g_validate_dataset_name = PyObject_GetAttrString(names, "validate_dataset_name");
    g_invalid_name = PyObject_GetAttrString(names, "InvalidName");
    Py_DECREF(names);
    if (!g_validate_dataset_name || !g_invalid_name) return NULL;

    PyObject *json = PyImport_ImportModule("json");
    if (!json) return NULL;
    PyObject *enc_cls = PyObject_GetAttrString(json, "JSONEncoder");
    Py_DECREF(json);
    if (!enc_cls) return NULL;
    PyObject *kw = Py_BuildValue("{s:(ss),s:O}", "separators", ",", ":", "ensure_ascii", Py_False);
    PyObject *args = PyTuple_New(0);
    PyObject *enc = (kw && args) ? PyObject_Call(enc_cls, args, kw) : NULL;
    Py_DECREF(enc_cls);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    if (!enc) return NULL;
    g_json_encode = PyObject_GetAttrString(enc, "encode");
    Py_DECREF(enc);
    if (!g_json_encode) return NULL;

    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    PyObject *fixed = PyTuple_New(NFIX);
    if (!fixed) {
        Py_DECREF(m);
        return NULL;
    }
    for (int i = 0; i < NFIX; i++) PyTuple_SET_ITEM(fixed, i, ref(g_fix_names[i]));
    if (PyModule_AddObject(m, "FIXED_COLUMNS", fixed) < 0) {
        Py_DECREF(fixed);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ROWS", MAX_ROWS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ATTR_KEYS", MAX_ATTR_KEYS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_CELLS", MAX_CELLS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_SLOTS", MAX_SLOTS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
