/*
 * transitwatch MRT decoder (RFC 6396, RFC 6793, RFC 8050): bytes in, columns of BGP elements out.
 *
 * Why C: full routing tables are about 25M elements per RIB dump and every Python MRT parser
 * measured runs at 16k-90k elements/s. This decoder walks the records once, parses each distinct
 * attribute block once (RIB entries repeat them heavily, so parsed blocks are cached by content)
 * and writes plain column buffers that Python wraps as Arrow arrays without copying again.
 *
 * It never stops on bad data: every record is checked against its own length fields and against
 * the next record's header; a record that fails is reported (offset, reason), skipped, and reading
 * resumes at the next plausible record boundary.
 *
 * Optionally it also renders each element exactly as `bgpdump -m` 1.6.2 prints it (same field
 * rules, same quirks); that text is an output format, kept apart from the element fields.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* growable byte buffers                                                                       */

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(buf_t *b, const void *src, size_t len) {
    if (buf_reserve(b, len)) return -1;
    memcpy(b->p + b->n, src, len);
    b->n += len;
    return 0;
}

static inline int buf_putc(buf_t *b, char c) {
    if (buf_reserve(b, 1)) return -1;
    b->p[b->n++] = c;
    return 0;
}

static inline int buf_puts(buf_t *b, const char *s) { return buf_put(b, s, strlen(s)); }

static int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_printf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    if (buf_reserve(b, 64)) return -1;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0) return -1;
    if ((size_t)k >= b->cap - b->n) {
        if (buf_reserve(b, (size_t)k + 1)) return -1;
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)k;
    return 0;
}

static inline int digits10(uint32_t v) {
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* decimal digits written straight into place (a stack buffer copied afterwards costs a
 * store-forwarding stall per number, which dominated path rendering) */
static inline char *put_u32dec(char *out, uint32_t v) {
    int d = digits10(v);
    char *q = out + d;
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return out + d;
}

static inline int buf_put_u32dec(buf_t *b, uint32_t v) {
    if (buf_reserve(b, 10)) return -1;
    b->n = (size_t)(put_u32dec(b->p + b->n, v) - b->p);
    return 0;
}

static void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* A column of strings in Arrow's layout: int32 offsets (count + 1 of them) and the bytes. */
typedef struct {
    buf_t off;
    buf_t data;
    int32_t count;
} strcol_t;

static int strcol_init(strcol_t *s) {
    s->off.n = 0;
    s->data.n = 0;
    s->count = 0;
    int32_t z = 0;
    return buf_put(&s->off, &z, 4);
}

static inline int strcol_end(strcol_t *s) { /* close the string being built in s->data */
    int32_t o = (int32_t)s->data.n;
    s->count++;
    return buf_put(&s->off, &o, 4);
}

static inline int strcol_add(strcol_t *s, const char *p, size_t len) {
    if (buf_put(&s->data, p, len)) return -1;
    return strcol_end(s);
}

static void strcol_free(strcol_t *s) {
    buf_free(&s->off);
    buf_free(&s->data);
}

/* ------------------------------------------------------------------------------------------ */
/* address formatting                                                                          */

static int fmt_v4(const uint8_t *a, char *out) {
    char *q = out;
    for (int i = 0; i < 4; i++) {
        if (i) *q++ = '.';
        q = put_u32dec(q, a[i]);
    }
    *q = 0;
    return (int)(q - out);
}

static int fmt_v6(const uint8_t *a, char *out) { /* RFC 5952 text, as inet_ntop writes it */
    if (!inet_ntop(AF_INET6, a, out, 64)) strcpy(out, "?");
    return (int)strlen(out);
}

/* bgpdump's own IPv6 formatter (inet_ntop.c in bgpdump 1.6.2): it also compresses a single zero
 * group and prints IPv4-compatible addresses in dotted form; reproduced for --format bgpdump. */
static int fmt_v6_bgpdump(const uint8_t *a, char *buffer) {
    static const char hexchars[] = "0123456789abcdef";
    int mapped = 1, compat = 1;
    for (int i = 0; i < 10; i++)
        if (a[i]) mapped = compat = 0;
    if (a[10] != 0xff || a[11] != 0xff) mapped = 0;
    if (a[10] || a[11]) compat = 0;
    uint32_t last = ((uint32_t)a[12] << 24) | ((uint32_t)a[13] << 16) | ((uint32_t)a[14] << 8) | a[15];
    if (compat && last <= 1) compat = 0;
    if (mapped || compat) {
        char b4[20];
        fmt_v4(a + 12, b4);
        return sprintf(buffer, "::%s%s", mapped ? "ffff:" : "", b4);
    }
    char hexa[8][5];
    int zr[8];
    int i, j, k = 0;
    for (i = 0; i < 16; i += 2) {
        int skip = 1;
        j = 0;
        memset(hexa[k], 0, 5);
        uint8_t x8 = a[i], hx8 = x8 >> 4;
        if (hx8 != 0) {
            skip = 0;
            hexa[k][j++] = hexchars[hx8];
        }
        hx8 = x8 & 0x0f;
        if (skip == 0 || hx8 != 0) {
            skip = 0;
            hexa[k][j++] = hexchars[hx8];
        }
        x8 = a[i + 1];
        hx8 = x8 >> 4;
        if (skip == 0 || hx8 != 0) hexa[k][j++] = hexchars[hx8];
        hx8 = x8 & 0x0f;
        hexa[k][j] = hexchars[hx8];
        k++;
    }
    j = 0;
    for (i = 7; i >= 0; i--) {
        if (a[2 * i] == 0 && a[2 * i + 1] == 0)
            j++;
        else
            j = 0;
        zr[i] = j;
    }
    k = -1;
    j = 0;
    for (i = 0; i < 8; i++)
        if (zr[i] > j) {
            k = i;
            j = zr[i];
        }
    for (i = 0; i < 8; i++)
        if (i != k) zr[i] = 0;
    int len = 0;
    for (i = 0; i < 8; i++) {
        if (zr[i] != 0) {
            if (i == 0) buffer[len++] = ':';
            buffer[len++] = ':';
            i += zr[i] - 1;
            continue;
        }
        for (j = 0; hexa[i][j] != '\0'; j++) buffer[len++] = hexa[i][j];
        if (i != 7) buffer[len++] = ':';
    }
    buffer[len] = '\0';
    return len;
}

/* ------------------------------------------------------------------------------------------ */
/* parsed path attributes                                                                      */

#define AF_FLAG(t) (1u << ((t) - 1))
#define A_ORIGIN 1
#define A_AS_PATH 2
#define A_NEXT_HOP 3
#define A_MED 4
#define A_LOCAL_PREF 5
#define A_ATOMIC 6
#define A_AGGREGATOR 7
#define A_COMMUNITIES 8
#define A_MP_REACH 14
#define A_MP_UNREACH 15
#define A_EXT_COMMUNITIES 16
#define A_AS4_PATH 17
#define A_AS4_AGGREGATOR 18
#define A_LARGE_COMMUNITIES 32
#define AS_TRANS 23456
#define NONE_V4 0xffffffffu /* bgpdump's INADDR_NONE marker for "absent" */

typedef struct {
    uint32_t off, len;
} sref_t;

typedef struct { /* one AS path segment: type and a run of ASNs in an external array */
    uint8_t type;
    uint32_t start, count;
} seg_t;

typedef struct {
    uint32_t flags; /* bit (type-1) for every attribute type 1..32 seen, as bgpdump keeps it */
    int origin;     /* -1 if absent */
    uint32_t nexthop, med, local_pref;
    uint32_t agg_as, agg_addr; /* after the RFC 6793 merge; agg_addr NONE_V4 when absent */
    int path_error;            /* AS_PATH present but malformed ("! Error !" in bgpdump) */
    int has_path;              /* the element's as_path is known */
    sref_t path, comm, lcomm, ecomm;
    uint32_t bgpdump_path_cut; /* bgpdump stops a path string near 8000 chars: where (0 = no) */
    int has_origin_asn;
    uint32_t origin_asn;
    /* MP_REACH next hops by [afi][safi], afi 1..2, safi 1..3 */
    uint16_t mp_seen;
    uint8_t mp_nh_len[3][4];
    uint8_t mp_nh[3][4][16];
    buf_t text; /* the strings */
} attrs_t;

static void attrs_reset(attrs_t *A) {
    A->flags = 0;
    A->origin = -1;
    A->nexthop = NONE_V4;
    A->med = A->local_pref = 0;
    A->agg_as = 0;
    A->agg_addr = NONE_V4;
    A->path_error = 0;
    A->has_path = 0;
    A->path.off = A->path.len = 0;
    A->comm = A->lcomm = A->ecomm = A->path;
    A->bgpdump_path_cut = 0;
    A->has_origin_asn = 0;
    A->origin_asn = 0;
    A->mp_seen = 0;
    A->text.n = 0;
}

/* one NLRI prefix */
typedef struct {
    uint8_t afi, len;
    uint32_t path_id;
    uint8_t addr[16];
} pfx_t;

typedef struct { /* a growable array of prefixes */
    pfx_t *v;
    size_t n, cap;
} pfxlist_t;

static int pfx_push(pfxlist_t *l, const pfx_t *p) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        pfx_t *v = realloc(l->v, cap * sizeof(pfx_t));
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *p;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the decoder object                                                                          */

#define CACHE_BITS 12
#define CACHE_SLOTS (1u << CACHE_BITS)
#define MAX_ISSUES_KEPT 10000

typedef struct {
    uint64_t hash;
    uint32_t keylen;
    uint32_t ctx;
    char *key;
    uint32_t keycap;
    int used;
    uint32_t gen; /* batch generation in which `local` is valid */
    int32_t local;
    attrs_t a;
} cslot_t;

typedef struct {
    uint8_t afi;
    uint32_t asn;
    uint8_t ip[16];
} peer_t;

typedef struct {
    int64_t offset;
    int64_t skipped; /* bytes skipped from offset (0 when nothing was skipped) */
    int severity;    /* 0 damaged, 1 unsupported, 2 warning */
    int type, subtype;
    char reason[200];
} issue_t;

enum { SEV_DAMAGED = 0, SEV_UNSUPPORTED = 1, SEV_WARNING = 2 };

/* element flags */
#define EF_PREFIX 1
#define EF_PATHID 2
#define EF_ORIGINATED 4
#define EF_STATE 8
#define EF_LINE 16
#define EF_PEERADDR 32

/* local (per batch) attribute entry flags */
#define LF_PATH 1
#define LF_NH 2
#define LF_COMM 4
#define LF_LCOMM 8
#define LF_ECOMM 16
#define LF_AGG 32
#define LF_LPREF 64
#define LF_MED 128
#define LF_ATOMIC 256
#define LF_ORIGINASN 512
#define LF_ORIGIN 1024

typedef struct {
    PyObject_HEAD
    /* settings */
    int want_bgpdump;
    Py_ssize_t batch_size;
    /* per-element columns of the current batch: typed arrays sharing one capacity */
    size_t n, cap;
    uint8_t *c_type, *c_rectype, *c_safi, *c_flags;
    int64_t *c_ts, *c_orig;
    int32_t *c_peer, *c_prefix, *c_attr;
    uint32_t *c_peer_asn, *c_path_id;
    uint16_t *c_old, *c_new;
    /* TABLE_DUMP_V2 peer index -> batch peer dictionary entry */
    int32_t *peer_local;
    uint32_t *peer_local_gen;
    strcol_t d_peer, d_prefix, lines;
    /* per-batch attribute dictionary */
    int32_t nlocal;
    strcol_t l_path, l_nh, l_comm, l_lcomm, l_ecomm, l_aggaddr;
    buf_t l_flags, l_origin, l_lpref, l_med, l_originasn, l_aggas;
    uint32_t gen;
    /* peer dictionary of the batch: small open-addressing table keyed by address */
    struct {
        uint8_t afi;
        uint8_t ip[16];
        uint32_t gen;
        int32_t local;
    } ptab[4096];
    /* TABLE_DUMP_V2 peer index table */
    peer_t *peers;
    uint32_t npeers;
    int have_peer_table;
    /* attribute cache for RIB entries */
    cslot_t *cache;
    /* scratch for updates */
    attrs_t msg_attrs;
    pfxlist_t wd, ann, mp_ann[3][4], mp_wd[3][4];
    uint32_t *asns;
    size_t nasns, capasns;
    seg_t *segs;
    size_t nsegs, capsegs;
    buf_t scratch;
    /* stream position and resynchronisation */
    int resyncing;
    int64_t damage_start;
    char damage_reason[160];
    int damage_type, damage_subtype;
    int have_last_ts;
    uint32_t last_ts;
    int done;
    /* issues and counters */
    issue_t *issues;
    size_t nissues, capissues;
    long long n_issues_total, n_issues_dropped;
    long long records, elements, damaged, unsupported, skipped_bytes, bgp_messages, updates, warnings;
    int oom;
    int64_t pending_skip; /* skipped-byte count for the next add_issue */
    /* the record being decoded */
    int64_t rec_off;
    int rec_type, rec_subtype;
    char err[160];
} Decoder;

/* ------------------------------------------------------------------------------------------ */
/* issues                                                                                      */

static void add_issue(Decoder *D, int64_t offset, int sev, int type, int subtype, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add_issue(Decoder *D, int64_t offset, int sev, int type, int subtype, const char *fmt, ...) {
    D->n_issues_total++;
    if (D->nissues >= MAX_ISSUES_KEPT) {
        D->n_issues_dropped++;
        return;
    }
    if (D->nissues == D->capissues) {
        size_t cap = D->capissues ? D->capissues * 2 : 16;
        issue_t *v = realloc(D->issues, cap * sizeof(issue_t));
        if (!v) {
            D->oom = 1;
            return;
        }
        D->issues = v;
        D->capissues = cap;
    }
    issue_t *is = &D->issues[D->nissues++];
    is->offset = offset;
    is->skipped = D->pending_skip;
    D->pending_skip = 0;
    is->severity = sev;
    is->type = type;
    is->subtype = subtype;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->reason, sizeof is->reason, fmt, ap);
    va_end(ap);
}

#define FAIL(...)                                                  \
    do {                                                           \
        snprintf(D->err, sizeof D->err, __VA_ARGS__);              \
        return -1;                                                 \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* reading helpers over a bounded cursor                                                       */

typedef struct {
    const uint8_t *p, *end;
} cur_t;

static inline size_t cur_left(const cur_t *c) { return (size_t)(c->end - c->p); }
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#define NEED(c, k, what)                                                                        \
    do {                                                                                        \
        if (cur_left(c) < (size_t)(k))                                                          \
            FAIL("%s needs %zu bytes, only %zu left", what, (size_t)(k), cur_left(c));          \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* attributes                                                                                  */

static int add_asn(Decoder *D, uint32_t a) {
    if (D->nasns == D->capasns) {
        size_t cap = D->capasns ? D->capasns * 2 : 256;
        uint32_t *v = realloc(D->asns, cap * sizeof(uint32_t));
        if (!v) return -1;
        D->asns = v;
        D->capasns = cap;
    }
    D->asns[D->nasns++] = a;
    return 0;
}

static int add_seg(Decoder *D, uint8_t type, uint32_t start, uint32_t count) {
    if (D->nsegs == D->capsegs) {
        size_t cap = D->capsegs ? D->capsegs * 2 : 32;
        seg_t *v = realloc(D->segs, cap * sizeof(seg_t));
        if (!v) return -1;
        D->segs = v;
        D->capsegs = cap;
    }
    D->segs[D->nsegs].type = type;
    D->segs[D->nsegs].start = start;
    D->segs[D->nsegs].count = count;
    D->nsegs++;
    return 0;
}

/* Parse an AS_PATH / AS4_PATH value into segments appended to D->segs/D->asns.
 * Returns the bgpdump "count" of the path (sequences count their ASNs, sets count 1),
 * or -1 if malformed (bgpdump's "! Error !"). */
static long parse_segments(Decoder *D, const uint8_t *p, size_t len, int asn_len, size_t *seg_first) {
    const uint8_t *end = p + len;
    long count = 0;
    *seg_first = D->nsegs;
    while (p < end) {
        if (end - p < 2) return -1;
        uint8_t type = p[0], n = p[1];
        if (type < 1 || type > 4) return -1;
        if (p + 2 + (size_t)n * asn_len > end) return -1;
        uint32_t start = (uint32_t)D->nasns;
        for (int i = 0; i < n; i++) {
            uint32_t a = asn_len == 2 ? rd16(p + 2 + 2 * i) : rd32(p + 2 + 4 * i);
            if (add_asn(D, a)) return -2;
        }
        if (add_seg(D, type, start, n)) return -2;
        count += (type == 2 || type == 3) ? n : 1; /* sequences count their ASes, sets count 1 */
        p += 2 + (size_t)n * asn_len;
    }
    return count;
}

/* 1 AS_SET {a,b}; 2 AS_SEQUENCE; 3 AS_CONFED_SEQUENCE (a b); 4 AS_CONFED_SET [a,b] (RFC 5065) */
static char seg_open(uint8_t t) { return t == 1 ? '{' : t == 3 ? '(' : t == 4 ? '[' : ' '; }
static char seg_close(uint8_t t) { return t == 1 ? '}' : t == 3 ? ')' : t == 4 ? ']' : ' '; }

/* Write segments [first, last) as bgpdump writes a path, and note where bgpdump's 8000-byte
 * buffer would have cut it. */
static int render_path(Decoder *D, attrs_t *A, size_t first, size_t last) {
    buf_t *t = &A->text;
    size_t base = t->n;
    int space = 0;
    uint8_t type = 2;
    for (size_t s = first; s < last; s++) {
        seg_t *g = &D->segs[s];
        if (type != 2 && buf_putc(t, seg_close(type))) return -1;
        if (space && buf_putc(t, ' ')) return -1;
        if (g->type != 2 && buf_putc(t, seg_open(g->type))) return -1;
        space = 0;
        for (uint32_t i = 0; i < g->count; i++) {
            if (space) {
                if (buf_putc(t, (g->type == 1 || g->type == 4) ? ',' : ' ')) return -1;
            } else
                space = 1;
            if (buf_put_u32dec(t, D->asns[g->start + i])) return -1;
            if (!A->bgpdump_path_cut && t->n - base > 8000 - 100) A->bgpdump_path_cut = (uint32_t)(t->n - base);
        }
        type = g->type;
    }
    if (last > first && D->segs[last - 1].type != 2 && buf_putc(t, seg_close(D->segs[last - 1].type))) return -1;
    A->path.off = (uint32_t)base;
    A->path.len = (uint32_t)(t->n - base);
    A->has_path = 1;
    if (last > first) {
        seg_t *g = &D->segs[last - 1];
        if (g->type == 2 && g->count) {
            A->has_origin_asn = 1;
            A->origin_asn = D->asns[g->start + g->count - 1];
        }
    }
    return 0;
}

static int render_communities(attrs_t *A, const uint8_t *p, size_t len) {
    buf_t *t = &A->text;
    size_t base = t->n;
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint32_t v = rd32(p + i);
        if (i && buf_putc(t, ' ')) return -1;
        if (v == 0xFFFFFF01u) {
            if (buf_puts(t, "no-export")) return -1;
        } else if (v == 0xFFFFFF02u) {
            if (buf_puts(t, "no-advertise")) return -1;
        } else if (v == 0xFFFFFF03u) {
            if (buf_puts(t, "local-AS")) return -1;
        } else {
            if (buf_put_u32dec(t, v >> 16) || buf_putc(t, ':') || buf_put_u32dec(t, v & 0xffff)) return -1;
        }
    }
    A->comm.off = (uint32_t)base;
    A->comm.len = (uint32_t)(t->n - base);
    return 0;
}

static int render_large(attrs_t *A, const uint8_t *p, size_t len) {
    buf_t *t = &A->text;
    size_t base = t->n;
    for (size_t i = 0; i + 12 <= len; i += 12) {
        if (i && buf_putc(t, ' ')) return -1;
        if (buf_put_u32dec(t, rd32(p + i)) || buf_putc(t, ':') || buf_put_u32dec(t, rd32(p + i + 4)) ||
            buf_putc(t, ':') || buf_put_u32dec(t, rd32(p + i + 8)))
            return -1;
    }
    A->lcomm.off = (uint32_t)base;
    A->lcomm.len = (uint32_t)(t->n - base);
    return 0;
}

/* Extended communities (RFC 4360): route targets and origins by name, the rest in hex. */
static int render_ext(attrs_t *A, const uint8_t *p, size_t len) {
    buf_t *t = &A->text;
    size_t base = t->n;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        const uint8_t *e = p + i;
        uint8_t type = e[0] & 0xbf, sub = e[1]; /* ignore the IANA-authority bit for naming */
        const char *name = sub == 2 ? "rt" : sub == 3 ? "soo" : NULL;
        if (i && buf_putc(t, ' ')) return -1;
        char tmp[64];
        if (name && type == 0x00)
            snprintf(tmp, sizeof tmp, "%s:%u:%u", name, rd16(e + 2), rd32(e + 4));
        else if (name && type == 0x01)
            snprintf(tmp, sizeof tmp, "%s:%u.%u.%u.%u:%u", name, e[2], e[3], e[4], e[5], rd16(e + 6));
        else if (name && type == 0x02)
            snprintf(tmp, sizeof tmp, "%s:%u:%u", name, rd32(e + 2), rd16(e + 6));
        else
            snprintf(tmp, sizeof tmp, "0x%02x%02x%02x%02x%02x%02x%02x%02x", e[0], e[1], e[2], e[3], e[4], e[5],
                     e[6], e[7]);
        if (buf_puts(t, tmp)) return -1;
    }
    A->ecomm.off = (uint32_t)base;
    A->ecomm.len = (uint32_t)(t->n - base);
    return 0;
}

/* Read an NLRI list (RFC 4271 4.3; RFC 7911 path ids when addpath). */
static int read_prefixes(Decoder *D, const uint8_t *p, size_t len, int afi, int addpath, pfxlist_t *out,
                         const char *what) {
    const uint8_t *end = p + len;
    int maxlen = afi == 2 ? 128 : 32;
    while (p < end) {
        pfx_t x;
        memset(&x, 0, sizeof x);
        x.afi = (uint8_t)afi;
        if (addpath) {
            if (end - p < 4) FAIL("%s: truncated ADD-PATH path identifier", what);
            x.path_id = rd32(p);
            p += 4;
        }
        if (end - p < 1) FAIL("%s: truncated prefix", what);
        x.len = *p++;
        if (x.len > maxlen) FAIL("%s: prefix length %u is longer than %d", what, x.len, maxlen);
        int nb = (x.len + 7) / 8;
        if (end - p < nb) FAIL("%s: prefix /%u needs %d bytes, %d left", what, x.len, nb, (int)(end - p));
        memcpy(x.addr, p, (size_t)nb);
        p += nb;
        if (pfx_push(out, &x)) FAIL("out of memory");
    }
    return 0;
}

static void clear_nlri(Decoder *D) {
    D->wd.n = D->ann.n = 0;
    for (int a = 0; a < 3; a++)
        for (int s = 0; s < 4; s++) D->mp_ann[a][s].n = D->mp_wd[a][s].n = 0;
}

/* Parse an attribute block. In a RIB entry (`in_rib`), MP_REACH may be the abbreviated form of
 * RFC 6396 4.3.4 and NLRI inside MP attributes are ignored. */
static int parse_attrs(Decoder *D, attrs_t *A, const uint8_t *p, size_t len, int asn_len, int addpath,
                       int in_rib) {
    const uint8_t *end = p + len;
    attrs_reset(A);
    D->nasns = 0;
    D->nsegs = 0;
    const uint8_t *as_path = NULL, *as4_path = NULL;
    size_t as_path_len = 0, as4_path_len = 0;
    uint32_t as4_agg_as = 0, as4_agg_addr = NONE_V4;
    const uint8_t *comm = NULL, *lcomm = NULL, *ecomm = NULL;
    size_t comm_len = 0, lcomm_len = 0, ecomm_len = 0;
    while (p < end) {
        if (end - p < 3) FAIL("truncated attribute header");
        uint8_t flags = p[0], type = p[1];
        size_t alen;
        if (flags & 0x10) {
            if (end - p < 4) FAIL("truncated attribute header");
            alen = rd16(p + 2);
            p += 4;
        } else {
            alen = p[2];
            p += 3;
        }
        if ((size_t)(end - p) < alen)
            FAIL("attribute %u declares %zu bytes, only %zu left in the block", type, alen, (size_t)(end - p));
        const uint8_t *v = p;
        p += alen;
        if (type >= 1 && type <= 32) {
            if ((A->flags & AF_FLAG(type)) && type != A_MP_REACH && type != A_MP_UNREACH) continue; /* RFC 7606: first wins */
            A->flags |= AF_FLAG(type);
        }
        switch (type) {
        case A_ORIGIN:
            if (alen < 1) FAIL("empty ORIGIN attribute");
            A->origin = v[0];
            break;
        case A_AS_PATH:
            as_path = v;
            as_path_len = alen;
            break;
        case A_NEXT_HOP:
            if (alen < 4) FAIL("NEXT_HOP attribute of %zu bytes", alen);
            memcpy(&A->nexthop, v, 4);
            break;
        case A_MED:
            if (alen < 4) FAIL("MULTI_EXIT_DISC attribute of %zu bytes", alen);
            A->med = rd32(v);
            break;
        case A_LOCAL_PREF:
            if (alen < 4) FAIL("LOCAL_PREF attribute of %zu bytes", alen);
            A->local_pref = rd32(v);
            break;
        case A_ATOMIC:
            break;
        case A_AGGREGATOR:
            if (alen < (size_t)asn_len + 4) FAIL("AGGREGATOR attribute of %zu bytes", alen);
            A->agg_as = asn_len == 2 ? rd16(v) : rd32(v);
            memcpy(&A->agg_addr, v + asn_len, 4);
            break;
        case A_COMMUNITIES:
            comm = v;
            comm_len = alen;
            break;
        case A_LARGE_COMMUNITIES:
            lcomm = v;
            lcomm_len = alen;
            break;
        case A_EXT_COMMUNITIES:
            ecomm = v;
            ecomm_len = alen;
            break;
        case A_AS4_PATH:
            as4_path = v;
            as4_path_len = alen;
            break;
        case A_AS4_AGGREGATOR:
            if (alen < 8) FAIL("AS4_AGGREGATOR attribute of %zu bytes", alen);
            as4_agg_as = rd32(v);
            memcpy(&as4_agg_addr, v + 4, 4);
            break;
        case A_MP_REACH: {
            if (alen < 1) FAIL("empty MP_REACH_NLRI");
            if (v[0] != 0) { /* abbreviated form: next hop length and next hop only */
                uint8_t nl = v[0];
                if (alen < (size_t)1 + nl) FAIL("MP_REACH_NLRI next hop of %u bytes overruns the attribute", nl);
                if (!(A->mp_seen & (1u << (2 * 4 + 1)))) {
                    A->mp_seen |= (uint16_t)(1u << (2 * 4 + 1));
                    A->mp_nh_len[2][1] = nl;
                    memset(A->mp_nh[2][1], 0, 16);
                    memcpy(A->mp_nh[2][1], v + 1, nl > 16 ? 16 : nl);
                }
                break;
            }
            if (alen < 5) FAIL("MP_REACH_NLRI of %zu bytes", alen);
            uint16_t afi = rd16(v);
            uint8_t safi = v[2], nl = v[3];
            if (alen < (size_t)5 + nl) FAIL("MP_REACH_NLRI next hop of %u bytes overruns the attribute", nl);
            if (afi < 1 || afi > 2 || safi < 1 || safi > 3) {
                add_issue(D, D->rec_off, SEV_UNSUPPORTED, D->rec_type, D->rec_subtype,
                          "MP_REACH_NLRI for AFI %u SAFI %u not decoded", afi, safi);
                break;
            }
            if (A->mp_seen & (1u << (afi * 4 + safi))) break; /* a second one for the same family: ignored */
            A->mp_seen |= (uint16_t)(1u << (afi * 4 + safi));
            A->mp_nh_len[afi][safi] = nl;
            memset(A->mp_nh[afi][safi], 0, 16);
            memcpy(A->mp_nh[afi][safi], v + 4, nl > 16 ? 16 : nl);
            if (in_rib) break;
            const uint8_t *q = v + 4 + nl;
            size_t left = alen - 4 - nl;
            uint8_t nsnpa = q[0];
            q++;
            left--;
            for (; nsnpa > 0; nsnpa--) { /* SNPAs are defunct (RFC 4760) but skip them correctly */
                if (left < 1 || left < (size_t)1 + q[0]) FAIL("MP_REACH_NLRI: truncated SNPA");
                left -= 1 + q[0];
                q += 1 + q[0];
            }
            if (read_prefixes(D, q, left, afi, addpath, &D->mp_ann[afi][safi], "MP_REACH_NLRI")) return -1;
            break;
        }
        case A_MP_UNREACH: {
            if (alen < 3) FAIL("MP_UNREACH_NLRI of %zu bytes", alen);
            uint16_t afi = rd16(v);
            uint8_t safi = v[2];
            if (afi < 1 || afi > 2 || safi < 1 || safi > 3) {
                add_issue(D, D->rec_off, SEV_UNSUPPORTED, D->rec_type, D->rec_subtype,
                          "MP_UNREACH_NLRI for AFI %u SAFI %u not decoded", afi, safi);
                break;
            }
            if (in_rib) break;
            if (D->mp_wd[afi][safi].n) break;
            if (read_prefixes(D, v + 3, alen - 3, afi, addpath, &D->mp_wd[afi][safi], "MP_UNREACH_NLRI"))
                return -1;
            break;
        }
        default:
            break;
        }
    }
    /* AS path, with the RFC 6793 merge of AS4_PATH on 2-byte sessions (bgpdump's algorithm) */
    int merge = 0;
    if (asn_len == 2) {
        merge = 1;
        if ((A->flags & AF_FLAG(A_AGGREGATOR)) && (A->flags & AF_FLAG(A_AS4_AGGREGATOR))) {
            if (A->agg_as != AS_TRANS)
                merge = 0; /* RFC 6793 4.2.3: AGGREGATOR not AS_TRANS, so AS4_* are ignored */
            else {
                A->agg_as = as4_agg_as;
                A->agg_addr = as4_agg_addr;
            }
        }
    }
    if (as_path) {
        size_t f1;
        long c1 = parse_segments(D, as_path, as_path_len, asn_len, &f1);
        if (c1 == -2) FAIL("out of memory");
        size_t l1 = D->nsegs;
        if (c1 < 0) {
            A->path_error = 1;
            D->nsegs = f1;
        } else {
            size_t first = f1, last = l1;
            if (merge && as4_path) {
                size_t f2;
                long c2 = parse_segments(D, as4_path, as4_path_len, 4, &f2);
                if (c2 == -2) FAIL("out of memory");
                size_t l2 = D->nsegs;
                if (c2 >= 0 && c1 >= c2) {
                    /* keep the first c1 - c2 ASes of AS_PATH, then all of AS4_PATH */
                    long target = c1 - c2, got = 0;
                    size_t mf = D->nsegs;
                    for (size_t s = f1; s < l1 && got < target; s++) {
                        seg_t g = D->segs[s];
                        if (g.type == 1 || g.type == 4)
                            got += 1;
                        else {
                            got += g.count;
                            if (got > target) g.count -= (uint32_t)(got - target);
                        }
                        if (add_seg(D, g.type, g.start, g.count)) FAIL("out of memory");
                    }
                    for (size_t s = f2; s < l2; s++) {
                        seg_t g = D->segs[s];
                        if (add_seg(D, g.type, g.start, g.count)) FAIL("out of memory");
                    }
                    first = mf;
                    last = D->nsegs;
                }
            }
            if (render_path(D, A, first, last)) FAIL("out of memory");
        }
    }
    if (comm && render_communities(A, comm, comm_len)) FAIL("out of memory");
    if (lcomm && render_large(A, lcomm, lcomm_len)) FAIL("out of memory");
    if (ecomm && render_ext(A, ecomm, ecomm_len)) FAIL("out of memory");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* batch building                                                                              */

static int32_t local_peer(Decoder *D, int afi, const uint8_t *ip) {
    uint32_t h = 2166136261u;
    int n = afi == 2 ? 16 : 4;
    for (int i = 0; i < n; i++) h = (h ^ ip[i]) * 16777619u;
    h ^= (uint32_t)afi;
    for (uint32_t probe = 0; probe < 4096; probe++) {
        uint32_t k = (h + probe) & 4095;
        if (D->ptab[k].gen != D->gen) {
            char s[64];
            int len = afi == 2 ? fmt_v6(ip, s) : fmt_v4(ip, s);
            if (strcol_add(&D->d_peer, s, (size_t)len)) return -1;
            D->ptab[k].gen = D->gen;
            D->ptab[k].afi = (uint8_t)afi;
            memcpy(D->ptab[k].ip, ip, (size_t)n);
            D->ptab[k].local = D->d_peer.count - 1;
            return D->ptab[k].local;
        }
        if (D->ptab[k].afi == afi && memcmp(D->ptab[k].ip, ip, (size_t)n) == 0) return D->ptab[k].local;
    }
    /* more than 4096 distinct peers in one batch: no dedup for the rest */
    char s[64];
    int len = afi == 2 ? fmt_v6(ip, s) : fmt_v4(ip, s);
    if (strcol_add(&D->d_peer, s, (size_t)len)) return -1;
    return D->d_peer.count - 1;
}

static int32_t add_prefix(Decoder *D, const pfx_t *x) {
    char s[64];
    int len = x->afi == 2 ? fmt_v6(x->addr, s) : fmt_v4(x->addr, s);
    s[len++] = '/';
    len = (int)(put_u32dec(s + len, x->len) - s);
    if (strcol_add(&D->d_prefix, s, (size_t)len)) return -1;
    return D->d_prefix.count - 1;
}

/* Which next hop an element gets: 0 NEXT_HOP attribute; 1..: MP_REACH of (afi,safi) = nh_sel;
 * -1 the RIB rule (MP IPv6 unicast slot, else MP IPv4 unicast, else NEXT_HOP). */
static int nexthop_text(const attrs_t *A, int sel_afi, int sel_safi, char *out) {
    if (sel_afi < 0) {
        if (A->mp_seen & (1u << (2 * 4 + 1))) {
            sel_afi = 2;
            sel_safi = 1;
        } else if (A->mp_seen & (1u << (1 * 4 + 1))) {
            sel_afi = 1;
            sel_safi = 1;
        } else
            sel_afi = 0;
    }
    if (sel_afi == 0) {
        if (!(A->flags & AF_FLAG(A_NEXT_HOP))) return -1;
        return fmt_v4((const uint8_t *)&A->nexthop, out);
    }
    if (!(A->mp_seen & (1u << (sel_afi * 4 + sel_safi)))) return -1;
    uint8_t nl = A->mp_nh_len[sel_afi][sel_safi];
    if (nl == 4) return fmt_v4(A->mp_nh[sel_afi][sel_safi], out);
    if (nl == 16 || nl == 32) return fmt_v6(A->mp_nh[sel_afi][sel_safi], out);
    return -1;
}

/* Add an attribute entry to the batch dictionary; returns its index. */
static int32_t add_local_attrs(Decoder *D, const attrs_t *A, int nh_afi, int nh_safi) {
    uint16_t f = 0;
    const char *t = A->text.p;
    if (A->has_path) {
        f |= LF_PATH;
        if (buf_put(&D->l_path.data, t + A->path.off, A->path.len)) return -1;
    }
    if (strcol_end(&D->l_path)) return -1;
    char nh[64];
    int nl = nexthop_text(A, nh_afi, nh_safi, nh);
    if (nl >= 0) {
        f |= LF_NH;
        if (buf_put(&D->l_nh.data, nh, (size_t)nl)) return -1;
    }
    if (strcol_end(&D->l_nh)) return -1;
    if (A->flags & AF_FLAG(A_COMMUNITIES)) {
        f |= LF_COMM;
        if (buf_put(&D->l_comm.data, t + A->comm.off, A->comm.len)) return -1;
    }
    if (strcol_end(&D->l_comm)) return -1;
    if (A->flags & AF_FLAG(A_LARGE_COMMUNITIES)) {
        f |= LF_LCOMM;
        if (buf_put(&D->l_lcomm.data, t + A->lcomm.off, A->lcomm.len)) return -1;
    }
    if (strcol_end(&D->l_lcomm)) return -1;
    if (A->flags & AF_FLAG(A_EXT_COMMUNITIES)) {
        f |= LF_ECOMM;
        if (buf_put(&D->l_ecomm.data, t + A->ecomm.off, A->ecomm.len)) return -1;
    }
    if (strcol_end(&D->l_ecomm)) return -1;
    uint32_t aggas = 0;
    if (A->flags & AF_FLAG(A_AGGREGATOR)) {
        char s[20];
        int k = fmt_v4((const uint8_t *)&A->agg_addr, s);
        f |= LF_AGG;
        aggas = A->agg_as;
        if (buf_put(&D->l_aggaddr.data, s, (size_t)k)) return -1;
    }
    if (strcol_end(&D->l_aggaddr)) return -1;
    if (A->flags & AF_FLAG(A_LOCAL_PREF)) f |= LF_LPREF;
    if (A->flags & AF_FLAG(A_MED)) f |= LF_MED;
    if (A->flags & AF_FLAG(A_ATOMIC)) f |= LF_ATOMIC;
    if (A->has_origin_asn) f |= LF_ORIGINASN;
    uint8_t origin = 255;
    if (A->origin >= 0 && A->origin <= 2) {
        f |= LF_ORIGIN;
        origin = (uint8_t)A->origin;
    }
    if (buf_put(&D->l_flags, &f, 2) || buf_put(&D->l_origin, &origin, 1) ||
        buf_put(&D->l_lpref, &A->local_pref, 4) || buf_put(&D->l_med, &A->med, 4) ||
        buf_put(&D->l_originasn, &A->origin_asn, 4) || buf_put(&D->l_aggas, &aggas, 4))
        return -1;
    return D->nlocal++;
}

enum { T_RIB = 0, T_ANN = 1, T_WD = 2, T_STATE = 3 };

/* record types as bgpdump names them (first column of -m output) */
static const char *RECTYPES[] = {"TABLE_DUMP",      "TABLE_DUMP2",        "TABLE_DUMP2_AP", "BGP",
                                 "BGP4MP",          "BGP4MP_ET",          "BGP4MP_LOCAL",   "BGP4MP_ET_LOCAL",
                                 "BGP4MP_AP",       "BGP4MP_ET_AP",       "BGP4MP_LOCAL_AP",
                                 "BGP4MP_ET_LOCAL_AP"};
enum {
    R_TD = 0,
    R_TD2,
    R_TD2_AP,
    R_BGP,
    R_BGP4MP,
    R_BGP4MP_ET,
    R_BGP4MP_LOCAL,
    R_BGP4MP_ET_LOCAL,
    R_BGP4MP_AP,
    R_BGP4MP_ET_AP,
    R_BGP4MP_LOCAL_AP,
    R_BGP4MP_ET_LOCAL_AP,
    N_RECTYPES
};

typedef struct {
    uint8_t type, rectype, safi;
    int64_t ts_us;
    int32_t peer, prefix, attr;
    uint32_t peer_asn, path_id;
    int has_path_id, has_originated, has_state;
    int64_t originated;
    uint16_t old_state, new_state;
} elem_t;

static int grow_columns(Decoder *D) {
    size_t cap = D->cap ? D->cap * 2 : 4096;
#define GROW(f)                                                  \
    do {                                                         \
        void *p_ = realloc(D->f, cap * sizeof(*D->f));           \
        if (!p_) return -1;                                      \
        D->f = p_;                                               \
    } while (0)
    GROW(c_type);
    GROW(c_rectype);
    GROW(c_safi);
    GROW(c_flags);
    GROW(c_ts);
    GROW(c_orig);
    GROW(c_peer);
    GROW(c_prefix);
    GROW(c_attr);
    GROW(c_peer_asn);
    GROW(c_path_id);
    GROW(c_old);
    GROW(c_new);
#undef GROW
    D->cap = cap;
    return 0;
}

static int emit(Decoder *D, const elem_t *e, const buf_t *line) {
    uint8_t fl = 0;
    if (e->prefix >= 0) fl |= EF_PREFIX;
    if (e->has_path_id) fl |= EF_PATHID;
    if (e->has_originated) fl |= EF_ORIGINATED;
    if (e->has_state) fl |= EF_STATE;
    if (e->peer >= 0) fl |= EF_PEERADDR;
    if (D->want_bgpdump) {
        if (line) {
            fl |= EF_LINE;
            if (buf_put(&D->lines.data, line->p, line->n)) return -1;
        }
        if (strcol_end(&D->lines)) return -1;
    }
    if (D->n == D->cap && grow_columns(D)) return -1;
    size_t i = D->n++;
    D->c_type[i] = e->type;
    D->c_rectype[i] = e->rectype;
    D->c_ts[i] = e->ts_us;
    D->c_peer[i] = e->peer;
    D->c_peer_asn[i] = e->peer_asn;
    D->c_prefix[i] = e->prefix;
    D->c_path_id[i] = e->path_id;
    D->c_attr[i] = e->attr;
    D->c_safi[i] = e->safi;
    D->c_orig[i] = e->originated;
    D->c_old[i] = e->old_state;
    D->c_new[i] = e->new_state;
    D->c_flags[i] = fl;
    D->elements++;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* bgpdump -m rendering helpers                                                                */

static const char *describe_origin(int origin) {
    if (origin == 0) return "IGP";
    if (origin == 1) return "EGP";
    return "INCOMPLETE";
}

/* the AS path as bgpdump prints it: "" when absent, "! Error !" when malformed, cut near 8000 */
static int bd_path(buf_t *L, const attrs_t *A, int require_flag) {
    if (require_flag && !(A->flags & AF_FLAG(A_AS_PATH))) return 0;
    if (A->path_error) return buf_puts(L, "! Error !");
    if (!A->has_path) return 0;
    if (A->bgpdump_path_cut) {
        if (buf_put(L, A->text.p + A->path.off, A->bgpdump_path_cut)) return -1;
        return buf_puts(L, "...");
    }
    return buf_put(L, A->text.p + A->path.off, A->path.len);
}

static int bd_comm(buf_t *L, const attrs_t *A) {
    if (A->flags & AF_FLAG(A_COMMUNITIES)) return buf_put(L, A->text.p + A->comm.off, A->comm.len);
    return 0;
}

static int bd_agg(buf_t *L, const attrs_t *A) { /* "AG|agg|" tail shared by all B/A lines */
    if (buf_puts(L, (A->flags & AF_FLAG(A_ATOMIC)) ? "AG|" : "NAG|")) return -1;
    if (A->agg_addr != NONE_V4) {
        char s[20];
        fmt_v4((const uint8_t *)&A->agg_addr, s);
        if (buf_printf(L, "%u %s", A->agg_as, s)) return -1;
    }
    return buf_putc(L, '|');
}

static inline uint32_t bd_pref(const attrs_t *A) {
    return (A->flags & AF_FLAG(A_LOCAL_PREF)) ? A->local_pref : 0;
}
static inline uint32_t bd_med(const attrs_t *A) { return (A->flags & AF_FLAG(A_MED)) ? A->med : 0; }

/* ------------------------------------------------------------------------------------------ */
/* RIB records                                                                                 */

static uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t seed) {
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h;
}

/* Parsed attributes of a RIB entry through the content-addressed cache. Returns the slot or NULL
 * (D->err says why). `ctx` separates blocks that parse differently (ASN size, ADD-PATH). */
static cslot_t *cached_attrs(Decoder *D, const uint8_t *p, size_t len, int asn_len, int addpath, uint32_t ctx) {
    uint64_t h = hash_bytes(p, len, ctx);
    cslot_t *s = &D->cache[h & (CACHE_SLOTS - 1)];
    if (s->used && s->hash == h && s->keylen == len && s->ctx == ctx && memcmp(s->key, p, len) == 0) return s;
    if (s->keycap < len) {
        char *k = realloc(s->key, len ? len : 1);
        if (!k) {
            snprintf(D->err, sizeof D->err, "out of memory");
            return NULL;
        }
        s->key = k;
        s->keycap = (uint32_t)len;
    }
    s->used = 0;
    s->gen = 0; /* any batch-local copy of the old content is no longer this slot's */
    if (parse_attrs(D, &s->a, p, len, asn_len, addpath, 1)) return NULL;
    memcpy(s->key, p, len);
    s->keylen = (uint32_t)len;
    s->hash = h;
    s->ctx = ctx;
    s->used = 1;
    return s;
}

static int32_t slot_local(Decoder *D, cslot_t *s) {
    if (s->gen == D->gen) return s->local;
    int32_t k = add_local_attrs(D, &s->a, -1, 0);
    if (k < 0) return -1;
    s->gen = D->gen;
    s->local = k;
    return k;
}

static int do_peer_index(Decoder *D, const uint8_t *b, size_t len) {
    cur_t c = {b, b + len};
    NEED(&c, 6, "PEER_INDEX_TABLE header");
    uint16_t vlen = rd16(c.p + 4);
    c.p += 6;
    NEED(&c, vlen + 2, "PEER_INDEX_TABLE view name");
    c.p += vlen;
    uint16_t count = rd16(c.p);
    c.p += 2;
    peer_t *v = malloc(sizeof(peer_t) * (count ? count : 1));
    if (!v) FAIL("out of memory");
    for (uint32_t i = 0; i < count; i++) {
        if (cur_left(&c) < 1) {
            free(v);
            FAIL("PEER_INDEX_TABLE entry %u of %u truncated", i, count);
        }
        uint8_t pt = c.p[0];
        size_t need = 1 + 4 + ((pt & 1) ? 16 : 4) + ((pt & 2) ? 4 : 2);
        if (cur_left(&c) < need) {
            free(v);
            FAIL("PEER_INDEX_TABLE entry %u of %u truncated", i, count);
        }
        const uint8_t *q = c.p + 5;
        memset(v[i].ip, 0, 16);
        v[i].afi = (pt & 1) ? 2 : 1;
        memcpy(v[i].ip, q, (pt & 1) ? 16 : 4);
        q += (pt & 1) ? 16 : 4;
        v[i].asn = (pt & 2) ? rd32(q) : rd16(q);
        c.p += need;
    }
    if (cur_left(&c)) {
        free(v);
        FAIL("PEER_INDEX_TABLE has %zu bytes after its %u peers", cur_left(&c), count);
    }
    int32_t *pl = calloc(count ? count : 1, sizeof(int32_t));
    uint32_t *pg = calloc(count ? count : 1, sizeof(uint32_t));
    if (!pl || !pg) {
        free(v);
        free(pl);
        free(pg);
        FAIL("out of memory");
    }
    free(D->peers);
    free(D->peer_local);
    free(D->peer_local_gen);
    D->peers = v;
    D->peer_local = pl;
    D->peer_local_gen = pg;
    D->npeers = count;
    D->have_peer_table = 1;
    return 0;
}

static int line_rib_tail(Decoder *D, buf_t *L, const attrs_t *A, int v1_ipv6_rule) {
    /* "nexthop|pref|med|comm|AG|agg|" for TABLE_DUMP / TABLE_DUMP_V2 */
    char nh[64];
    nh[0] = 0;
    if (v1_ipv6_rule) { /* TABLE_DUMP: MP IPv6 unicast next hop, else NEXT_HOP */
        if ((A->flags & AF_FLAG(A_MP_REACH)) && (A->mp_seen & (1u << (2 * 4 + 1))))
            fmt_v6_bgpdump(A->mp_nh[2][1], nh);
        else
            fmt_v4((const uint8_t *)&A->nexthop, nh);
    } else {
        int afi = 0;
        if ((A->flags & AF_FLAG(A_MP_REACH)) && (A->mp_seen & (1u << (2 * 4 + 1))))
            afi = 2;
        else if ((A->flags & AF_FLAG(A_MP_REACH)) && (A->mp_seen & (1u << (1 * 4 + 1))))
            afi = 1;
        if (afi) {
            uint8_t nl = A->mp_nh_len[afi][1];
            if (nl == 4)
                fmt_v4(A->mp_nh[afi][1], nh);
            else if (nl == 16 || nl == 32)
                fmt_v6_bgpdump(A->mp_nh[afi][1], nh);
        } else
            fmt_v4((const uint8_t *)&A->nexthop, nh);
    }
    if (buf_printf(L, "%s|%u|%u|", nh, bd_pref(A), bd_med(A))) return -1;
    if (bd_comm(L, A) || buf_putc(L, '|')) return -1;
    return bd_agg(L, A);
}

static int do_rib_v2(Decoder *D, const uint8_t *b, size_t len, uint32_t ts, int subtype) {
    int addpath = subtype >= 8;
    int base = addpath ? subtype - 6 : subtype; /* 2..5 */
    int afi = (base == 2 || base == 3) ? 1 : 2;
    int safi = (base == 2 || base == 4) ? 1 : 2;
    cur_t c = {b, b + len};
    if (!D->have_peer_table) FAIL("RIB record before any PEER_INDEX_TABLE");
    NEED(&c, 5, "RIB header");
    c.p += 4; /* sequence number */
    pfx_t x;
    memset(&x, 0, sizeof x);
    x.afi = (uint8_t)afi;
    x.len = c.p[0];
    c.p++;
    if (x.len > (afi == 2 ? 128 : 32)) FAIL("prefix length %u", x.len);
    int nb = (x.len + 7) / 8;
    NEED(&c, nb + 2, "RIB prefix");
    memcpy(x.addr, c.p, (size_t)nb);
    c.p += nb;
    uint16_t count = rd16(c.p);
    c.p += 2;
    int32_t pidx = add_prefix(D, &x);
    if (pidx < 0) FAIL("out of memory");
    char pfxbd[64] = "";
    if (D->want_bgpdump) {
        int k = afi == 2 ? fmt_v6_bgpdump(x.addr, pfxbd) : fmt_v4(x.addr, pfxbd);
        sprintf(pfxbd + k, "/%d", x.len);
    }
    elem_t e;
    memset(&e, 0, sizeof e);
    e.type = T_RIB;
    e.rectype = addpath ? R_TD2_AP : R_TD2;
    e.ts_us = (int64_t)ts * 1000000;
    e.prefix = pidx;
    e.safi = (uint8_t)safi;
    e.has_originated = 1;
    e.has_path_id = addpath;
    buf_t *L = &D->scratch;
    for (uint32_t i = 0; i < count; i++) {
        if (cur_left(&c) < (size_t)(addpath ? 12 : 8))
            FAIL("RIB entry %u of %u truncated (%zu bytes left)", i, count, cur_left(&c));
        uint16_t pi = rd16(c.p);
        uint32_t orig = rd32(c.p + 2);
        const uint8_t *q = c.p + 6;
        if (addpath) {
            e.path_id = rd32(q);
            q += 4;
        }
        uint16_t alen = rd16(q);
        q += 2;
        if ((size_t)(c.end - q) < alen) FAIL("RIB entry %u of %u: attributes overrun the record", i, count);
        c.p = q + alen;
        if (pi >= D->npeers) FAIL("RIB entry %u refers to peer %u of a %u-peer index table", i, pi, D->npeers);
        cslot_t *s = cached_attrs(D, q, alen, 4, addpath, (uint32_t)(1 + addpath));
        if (!s) {
            char why[160];
            snprintf(why, sizeof why, "%s", D->err);
            FAIL("RIB entry %u of %u: %s", i, count, why);
        }
        peer_t *pe = &D->peers[pi];
        if (D->peer_local_gen[pi] != D->gen) {
            D->peer_local[pi] = local_peer(D, pe->afi, pe->ip);
            D->peer_local_gen[pi] = D->gen;
        }
        e.peer = D->peer_local[pi];
        e.peer_asn = pe->asn;
        e.originated = orig;
        e.attr = slot_local(D, s);
        if (e.peer < 0 || e.attr < 0) FAIL("out of memory");
        const buf_t *line = NULL;
        if (D->want_bgpdump && safi == 1) {
            const attrs_t *A = &s->a;
            char peer[64];
            if (pe->afi == 2)
                fmt_v6_bgpdump(pe->ip, peer);
            else
                fmt_v4(pe->ip, peer);
            L->n = 0;
            if (buf_printf(L, "%s|%u|B|%s|%u|%s|", RECTYPES[e.rectype], ts, peer, pe->asn, pfxbd)) FAIL("oom");
            if (addpath && buf_printf(L, "%u|", e.path_id)) FAIL("oom");
            if (bd_path(L, A, 0) || buf_printf(L, "|%s|", describe_origin(A->origin))) FAIL("oom");
            if (line_rib_tail(D, L, A, 0)) FAIL("oom");
            line = L;
        }
        if (emit(D, &e, line)) FAIL("out of memory");
    }
    if (cur_left(&c)) FAIL("%zu bytes after the record's %u RIB entries", cur_left(&c), count);
    return 0;
}

static int do_table_dump_v1(Decoder *D, const uint8_t *b, size_t len, uint32_t ts, int subtype) {
    int v6 = subtype == 2 || subtype == 4;
    int asn_len = subtype >= 3 ? 4 : 2;
    int alen_ip = v6 ? 16 : 4;
    cur_t c = {b, b + len};
    size_t fixed = 4 + (size_t)alen_ip + 2 + 4 + (size_t)alen_ip + (size_t)asn_len + 2;
    NEED(&c, fixed, "TABLE_DUMP entry");
    pfx_t x;
    memset(&x, 0, sizeof x);
    x.afi = v6 ? 2 : 1;
    memcpy(x.addr, c.p + 4, (size_t)alen_ip);
    const uint8_t *q = c.p + 4 + alen_ip;
    x.len = q[0];
    uint32_t uptime = rd32(q + 2);
    q += 6;
    uint8_t peer_ip[16] = {0};
    memcpy(peer_ip, q, (size_t)alen_ip);
    q += alen_ip;
    uint32_t peer_as = asn_len == 4 ? rd32(q) : rd16(q);
    q += asn_len;
    uint16_t alen = rd16(q);
    q += 2;
    if ((size_t)(c.end - q) != alen)
        FAIL("TABLE_DUMP attributes declare %u bytes, record has %zu", alen, (size_t)(c.end - q));
    if (x.len > (v6 ? 128 : 32)) FAIL("prefix length %u", x.len);
    cslot_t *s = cached_attrs(D, q, alen, asn_len, 0, (uint32_t)(10 + asn_len));
    if (!s) return -1;
    elem_t e;
    memset(&e, 0, sizeof e);
    e.type = T_RIB;
    e.rectype = R_TD;
    e.ts_us = (int64_t)ts * 1000000;
    e.safi = 1;
    e.peer = local_peer(D, x.afi, peer_ip);
    e.peer_asn = peer_as;
    e.prefix = add_prefix(D, &x);
    e.attr = slot_local(D, s);
    e.originated = uptime;
    e.has_originated = 1;
    if (e.peer < 0 || e.prefix < 0 || e.attr < 0) FAIL("out of memory");
    const buf_t *line = NULL;
    if (D->want_bgpdump) {
        buf_t *L = &D->scratch;
        const attrs_t *A = &s->a;
        char peer[64], pf[64];
        if (subtype == 2) { /* bgpdump formats IPv6 only for subtype 2 (AFI_IP6), not 4 */
            fmt_v6_bgpdump(peer_ip, peer);
            fmt_v6_bgpdump(x.addr, pf);
        } else {
            fmt_v4(peer_ip, peer);
            fmt_v4(x.addr, pf);
        }
        L->n = 0;
        if (buf_printf(L, "TABLE_DUMP|%u|B|%s|%u|%s/%d|", ts, peer, peer_as, pf, x.len)) FAIL("oom");
        if (bd_path(L, A, 1) || buf_printf(L, "|%s|", describe_origin(A->origin))) FAIL("oom");
        if (line_rib_tail(D, L, A, 1)) FAIL("oom");
        line = L;
    }
    return emit(D, &e, line) ? (snprintf(D->err, sizeof D->err, "out of memory"), -1) : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* BGP4MP and legacy BGP messages                                                              */

typedef struct {
    int rectype; /* R_* */
    int et;
    uint32_t ts, usec;
    int addpath, asn_len;
    int receive;  /* bgpdump's direction test: 0 only for MESSAGE_LOCAL and MESSAGE_AS4_LOCAL */
    int bd_local; /* bgpdump prints the local side (it swaps LOCAL_ADDPATH fields, then calls them received) */
    uint16_t afi;
    uint32_t peer_as, local_as;
    uint8_t peer_ip[16], local_ip[16];
    char tstr[40];
    int legacy; /* MRT type 5 */
} msg_t;

/* peer as bgpdump prints it for a line (see table_line_* in bgpdump.c) */
static void bd_peer(const msg_t *m, int v6fmt_for_v4_local_quirk, char *out, uint32_t *as) {
    /* bgpdump reads LOCAL subtypes with the two fields swapped, then prints "source" for received
     * and "destination" for sent messages; for MESSAGE_LOCAL_ADDPATH it prints the local side. */
    const uint8_t *ip = m->bd_local ? m->local_ip : m->peer_ip;
    *as = m->bd_local ? m->local_as : m->peer_as;
    if (m->afi == 2)
        fmt_v6_bgpdump(ip, out);
    else if (v6fmt_for_v4_local_quirk && !m->receive) {
        uint8_t tmp[16] = {0};
        memcpy(tmp, ip, 4);
        fmt_v6_bgpdump(tmp, out);
    } else
        fmt_v4(ip, out);
}

static int line_withdraw(Decoder *D, buf_t *L, const msg_t *m, const pfx_t *x, int v6list) {
    char peer[64], pf[64];
    uint32_t as;
    L->n = 0;
    if (m->legacy) {
        /* bgpdump passes inet_ntoa() twice to one printf; both share its static buffer, so the
         * peer address is printed in place of the prefix. Reproduced here, in the text only. */
        fmt_v4(m->peer_ip, peer);
        return buf_printf(L, "BGP|%s|W|%s|%u|%s/%d", m->tstr, peer, m->peer_as, peer, x->len);
    }
    bd_peer(m, v6list, peer, &as);
    if (v6list)
        fmt_v6_bgpdump(x->addr, pf);
    else
        fmt_v4(x->addr, pf);
    if (buf_printf(L, "%s|%s|W|%s|%u|%s/%d", RECTYPES[m->rectype], m->tstr, peer, as, pf, x->len)) return -1;
    if (m->addpath) return buf_printf(L, "|%u", x->path_id);
    return 0;
}

/* kind: 0 classic IPv4 NLRI, 1 MP IPv4, 2 MP IPv6 */
static int line_announce(Decoder *D, buf_t *L, const msg_t *m, const attrs_t *A, const pfx_t *x, int kind,
                         int afi, int safi) {
    char peer[64], pf[64], nh[64];
    uint32_t as;
    L->n = 0;
    if (m->legacy) { /* mrtd_table_line_announce, including its missing '|' before communities */
        fmt_v4(m->peer_ip, peer);
        fmt_v4(x->addr, pf);
        if (buf_printf(L, "BGP|%s|A|%s|%u|%s/%d|", m->tstr, peer, m->peer_as, pf, x->len)) return -1;
        if (bd_path(L, A, 1)) return -1;
        fmt_v4((const uint8_t *)&A->nexthop, nh);
        if (buf_printf(L, "|%s|%s|%u|%u", describe_origin(A->origin), nh, bd_pref(A), bd_med(A))) return -1;
        if (A->flags & AF_FLAG(A_COMMUNITIES)) {
            if (bd_comm(L, A) || buf_printf(L, "|%s|", (A->flags & AF_FLAG(A_ATOMIC)) ? "AG" : "NAG")) return -1;
        } else if (buf_printf(L, "|%s|", (A->flags & AF_FLAG(A_ATOMIC)) ? "AG" : "NAG"))
            return -1;
        if (A->agg_addr != NONE_V4) {
            char s[20];
            fmt_v4((const uint8_t *)&A->agg_addr, s);
            return buf_printf(L, "%u %s|", A->agg_as, s);
        }
        return buf_putc(L, '|');
    }
    bd_peer(m, 0, peer, &as);
    if (buf_printf(L, "%s|%s|A|%s|%u|", RECTYPES[m->rectype], m->tstr, peer, as)) return -1;
    if (kind == 2) {
        fmt_v6_bgpdump(x->addr, pf);
        if (buf_printf(L, "%s/%d|", pf, x->len)) return -1;
        if (m->addpath && buf_printf(L, "%u|", x->path_id)) return -1;
        uint8_t nl = A->mp_nh_len[afi][safi];
        if (nl == 4 || nl == 16 || nl == 32) {
            if (nl == 4)
                fmt_v4(A->mp_nh[afi][safi], nh);
            else
                fmt_v6_bgpdump(A->mp_nh[afi][safi], nh);
            if (bd_path(L, A, 1) ||
                buf_printf(L, "|%s|%s|%u|%u|", describe_origin(A->origin), nh, bd_pref(A), bd_med(A)))
                return -1;
        }
    } else {
        fmt_v4(x->addr, pf);
        if (buf_printf(L, "%s/%d|", pf, x->len)) return -1;
        if (m->addpath && buf_printf(L, "%u|", x->path_id)) return -1;
        if (bd_path(L, A, 1) || buf_printf(L, "|%s|", describe_origin(A->origin))) return -1;
        if (kind == 0) {
            fmt_v4((const uint8_t *)&A->nexthop, nh);
            if (buf_printf(L, "%s|%u|%u|", nh, bd_pref(A), bd_med(A))) return -1;
        } else {
            uint8_t nl = A->mp_nh_len[afi][safi];
            if (nl == 4 || nl == 16 || nl == 32) { /* bgpdump prints these two with %d here */
                if (nl == 4)
                    fmt_v4(A->mp_nh[afi][safi], nh);
                else
                    fmt_v6_bgpdump(A->mp_nh[afi][safi], nh);
                if (buf_printf(L, "%s|%d|%d|", nh, (int)bd_pref(A), (int)bd_med(A))) return -1;
            }
        }
    }
    if (bd_comm(L, A) || buf_putc(L, '|')) return -1;
    return bd_agg(L, A);
}

static int emit_update(Decoder *D, const msg_t *m, const attrs_t *A) {
    elem_t e;
    memset(&e, 0, sizeof e);
    e.rectype = (uint8_t)m->rectype;
    e.ts_us = (int64_t)m->ts * 1000000 + m->usec;
    e.peer = local_peer(D, m->afi == 2 ? 2 : 1, m->peer_ip);
    if (e.peer < 0) FAIL("out of memory");
    e.peer_asn = m->peer_as;
    e.has_path_id = m->addpath;
    buf_t *L = &D->scratch;
    int want = D->want_bgpdump;
    /* withdrawals: classic, then MP IPv4 by SAFI, then MP IPv6 by SAFI (bgpdump's order) */
    e.type = T_WD;
    e.attr = -1;
    for (int g = 0; g < 7; g++) {
        const pfxlist_t *l = g == 0 ? &D->wd : &D->mp_wd[g <= 3 ? 1 : 2][g <= 3 ? g : g - 3];
        e.safi = (uint8_t)(g == 0 ? 1 : (g <= 3 ? g : g - 3));
        for (size_t i = 0; i < l->n; i++) {
            e.prefix = add_prefix(D, &l->v[i]);
            e.path_id = l->v[i].path_id;
            if (e.prefix < 0) FAIL("out of memory");
            if (want && line_withdraw(D, L, m, &l->v[i], g >= 4)) FAIL("out of memory");
            if (emit(D, &e, want ? L : NULL)) FAIL("out of memory");
        }
    }
    e.type = T_ANN;
    for (int g = 0; g < 7; g++) {
        int afi = g == 0 ? 0 : (g <= 3 ? 1 : 2), safi = g == 0 ? 0 : (g <= 3 ? g : g - 3);
        const pfxlist_t *l = g == 0 ? &D->ann : &D->mp_ann[afi][safi];
        if (!l->n) continue;
        e.safi = (uint8_t)(g == 0 ? 1 : safi);
        e.attr = add_local_attrs(D, A, afi, safi);
        if (e.attr < 0) FAIL("out of memory");
        for (size_t i = 0; i < l->n; i++) {
            e.prefix = add_prefix(D, &l->v[i]);
            e.path_id = l->v[i].path_id;
            if (e.prefix < 0) FAIL("out of memory");
            if (want && line_announce(D, L, m, A, &l->v[i], g == 0 ? 0 : (afi == 1 ? 1 : 2), afi, safi))
                FAIL("out of memory");
            if (emit(D, &e, want ? L : NULL)) FAIL("out of memory");
        }
    }
    return 0;
}

/* the UPDATE body after the BGP header (or after the legacy BGP fields) */
static int do_update_body(Decoder *D, const msg_t *m, const uint8_t *p, size_t len) {
    cur_t c = {p, p + len};
    clear_nlri(D);
    NEED(&c, 2, "UPDATE withdrawn routes length");
    uint16_t wl = rd16(c.p);
    c.p += 2;
    NEED(&c, wl, "UPDATE withdrawn routes");
    if (read_prefixes(D, c.p, wl, 1, m->addpath, &D->wd, "withdrawn routes")) return -1;
    c.p += wl;
    NEED(&c, 2, "UPDATE path attribute length");
    uint16_t al = rd16(c.p);
    c.p += 2;
    NEED(&c, al, "UPDATE path attributes");
    if (parse_attrs(D, &D->msg_attrs, c.p, al, m->asn_len, m->addpath, 0)) return -1;
    c.p += al;
    if (read_prefixes(D, c.p, cur_left(&c), 1, m->addpath, &D->ann, "NLRI")) return -1;
    D->updates++;
    if (D->msg_attrs.path_error) {
        D->warnings++;
        add_issue(D, D->rec_off, SEV_WARNING, D->rec_type, D->rec_subtype,
                  "malformed AS_PATH attribute: elements kept without a path");
    }
    return emit_update(D, m, &D->msg_attrs);
}

static int do_bgp4mp(Decoder *D, const uint8_t *b, size_t len, uint32_t ts, int type, int subtype) {
    msg_t m;
    memset(&m, 0, sizeof m);
    m.et = type == 17;
    m.ts = ts;
    cur_t c = {b, b + len};
    if (m.et) {
        NEED(&c, 4, "BGP4MP_ET microseconds");
        m.usec = rd32(c.p);
        c.p += 4;
        if (m.usec > 999999) {
            D->warnings++;
            add_issue(D, D->rec_off, SEV_WARNING, type, subtype, "microsecond field %u is not below 1000000", m.usec);
        }
    }
    if (D->want_bgpdump) { /* the time as bgpdump prints it, only needed for its lines */
        if (m.et)
            snprintf(m.tstr, sizeof m.tstr, "%u.%06u", ts, m.usec);
        else
            snprintf(m.tstr, sizeof m.tstr, "%u", ts);
    }
    size_t rec_len = cur_left(&c);
    if (subtype == 0 || subtype == 5) { /* STATE_CHANGE(_AS4) */
        int asn_len = subtype == 5 ? 4 : 2;
        elem_t e;
        memset(&e, 0, sizeof e);
        e.type = T_STATE;
        e.rectype = m.et ? R_BGP4MP_ET : R_BGP4MP;
        e.ts_us = (int64_t)ts * 1000000 + m.usec;
        e.prefix = -1;
        e.attr = -1;
        e.has_state = 1;
            uint8_t ip[16] = {0};
        int afi = 1;
        NEED(&c, 2 * asn_len, "STATE_CHANGE AS numbers");
        e.peer_asn = asn_len == 4 ? rd32(c.p) : rd16(c.p);
        c.p += 2 * asn_len;
        if (rec_len == 8 && asn_len == 2) {
            /* Zebra wrote 8-byte state changes without interface, AFI and addresses */
            e.old_state = rd16(c.p);
            e.new_state = rd16(c.p + 2);
            D->warnings++;
            add_issue(D, D->rec_off, SEV_WARNING, type, subtype,
                      "8-byte STATE_CHANGE (Zebra bug): no peer address, decoded as bgpdump does");
            e.peer = -2; /* no address */
        } else {
            NEED(&c, 4, "STATE_CHANGE interface and AFI");
            afi = rd16(c.p + 2);
            c.p += 4;
            if (afi != 1 && afi != 2) FAIL("STATE_CHANGE with unknown AFI %d", afi);
            int al = afi == 2 ? 16 : 4;
            if (cur_left(&c) != (size_t)(2 * al + 4))
                FAIL("STATE_CHANGE of %zu bytes for AFI %d", rec_len, afi);
            memcpy(ip, c.p, (size_t)al);
            c.p += 2 * al;
            e.old_state = rd16(c.p);
            e.new_state = rd16(c.p + 2);
            e.peer = local_peer(D, afi, ip);
            if (e.peer < 0) FAIL("out of memory");
        }
        const buf_t *line = NULL;
        if (D->want_bgpdump) {
            char peer[64];
            if (afi == 2)
                fmt_v6_bgpdump(ip, peer);
            else
                fmt_v4(ip, peer);
            buf_t *L = &D->scratch;
            L->n = 0;
            if (buf_printf(L, "%s|%s|STATE|%s|%u|%d|%d", m.et ? "BGP4MP_ET" : "BGP4MP", m.tstr, peer, e.peer_asn,
                           e.old_state, e.new_state))
                FAIL("oom");
            line = L;
        }
        if (e.peer == -2) {
            e.peer = -1;
        }
        if (emit(D, &e, line)) FAIL("out of memory");
        return 0;
    }
    if (subtype == 2 || subtype == 3) {
        D->unsupported++;
        add_issue(D, D->rec_off, SEV_UNSUPPORTED, type, subtype, "BGP4MP_%s records are not decoded",
                  subtype == 2 ? "ENTRY" : "SNAPSHOT");
        return 0;
    }
    if (subtype < 1 || subtype > 11) FAIL("unknown BGP4MP subtype %d", subtype);
    int local = subtype == 6 || subtype == 7 || subtype == 10 || subtype == 11;
    m.addpath = subtype >= 8;
    m.asn_len = (subtype == 4 || subtype == 7 || subtype == 9 || subtype == 11) ? 4 : 2;
    m.receive = !(subtype == 6 || subtype == 7);
    m.bd_local = subtype == 10 || subtype == 11;
    if (m.et)
        m.rectype = local ? (m.addpath ? R_BGP4MP_ET_LOCAL_AP : R_BGP4MP_ET_LOCAL) : (m.addpath ? R_BGP4MP_ET_AP : R_BGP4MP_ET);
    else
        m.rectype = local ? (m.addpath ? R_BGP4MP_LOCAL_AP : R_BGP4MP_LOCAL) : (m.addpath ? R_BGP4MP_AP : R_BGP4MP);
    /* bgpdump names 10/11 by direction too, and its direction check only knows 6 and 7 */
    if (subtype == 10 || subtype == 11) m.rectype = m.et ? R_BGP4MP_ET_AP : R_BGP4MP_AP;
    NEED(&c, 2 * m.asn_len + 4, "BGP4MP message header");
    m.peer_as = m.asn_len == 4 ? rd32(c.p) : rd16(c.p);
    m.local_as = m.asn_len == 4 ? rd32(c.p + m.asn_len) : rd16(c.p + m.asn_len);
    c.p += 2 * m.asn_len;
    uint16_t ifindex = rd16(c.p);
    m.afi = rd16(c.p + 2);
    if (m.afi == 0xFFFF && ifindex == 0xFFFF) {
        /* Zebra wrote OPENs without interface, AFI and addresses: these 4 bytes begin the marker */
        m.afi = 1;
        D->warnings++;
        add_issue(D, D->rec_off, SEV_WARNING, type, subtype,
                  "BGP4MP message without interface, AFI and addresses (Zebra bug): decoded as bgpdump does");
    } else {
        c.p += 4;
        if (m.afi != 1 && m.afi != 2) FAIL("BGP4MP message with unknown AFI %u", m.afi);
        int al = m.afi == 2 ? 16 : 4;
        NEED(&c, 2 * al, "BGP4MP addresses");
        memcpy(m.peer_ip, c.p, (size_t)al);
        memcpy(m.local_ip, c.p + al, (size_t)al);
        c.p += 2 * al;
    }
    NEED(&c, 19, "BGP message header");
    static const uint8_t marker[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (memcmp(c.p, marker, 16) != 0) FAIL("BGP message marker is not all ones");
    const uint8_t *msg = c.p;
    uint16_t blen = rd16(msg + 16);
    uint8_t btype = msg[18];
    size_t avail = (size_t)(c.end - msg);
    if (blen < 19) FAIL("BGP message length %u is below the minimum of 19", blen);
    if (blen != avail) FAIL("BGP message length %u, but the MRT record holds %zu bytes", blen, avail);
    D->bgp_messages++;
    if (btype != 2) return 0; /* OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH: no elements */
    return do_update_body(D, &m, msg + 19, blen - 19);
}

static int do_bgp_legacy(Decoder *D, const uint8_t *b, size_t len, uint32_t ts, int subtype) {
    msg_t m;
    memset(&m, 0, sizeof m);
    m.legacy = 1;
    m.ts = ts;
    m.asn_len = 2;
    m.afi = 1;
    m.receive = 1;
    m.rectype = R_BGP;
    if (D->want_bgpdump) snprintf(m.tstr, sizeof m.tstr, "%u", ts);
    cur_t c = {b, b + len};
    if (subtype == 1) { /* UPDATE */
        NEED(&c, 12, "BGP UPDATE header");
        m.peer_as = rd16(c.p);
        memcpy(m.peer_ip, c.p + 2, 4);
        m.local_as = rd16(c.p + 6);
        memcpy(m.local_ip, c.p + 8, 4);
        c.p += 12;
        D->bgp_messages++;
        return do_update_body(D, &m, c.p, cur_left(&c));
    }
    if (subtype == 3) { /* STATE_CHANGE */
        if (len != 10) FAIL("BGP STATE_CHANGE of %zu bytes (expected 10)", len);
        elem_t e;
        memset(&e, 0, sizeof e);
        e.type = T_STATE;
        e.rectype = R_BGP;
        e.ts_us = (int64_t)ts * 1000000;
        e.prefix = -1;
        e.attr = -1;
        e.has_state = 1;
            e.peer_asn = rd16(c.p);
        uint8_t ip[16] = {0};
        memcpy(ip, c.p + 2, 4);
        uint16_t o = rd16(c.p + 6), n = rd16(c.p + 8);
        e.old_state = o;
        e.new_state = n;
        e.peer = local_peer(D, 1, ip);
        if (e.peer < 0) FAIL("out of memory");
        const buf_t *line = NULL;
        if (D->want_bgpdump) {
            char peer[20];
            fmt_v4(ip, peer);
            buf_t *L = &D->scratch;
            L->n = 0;
            if (buf_printf(L, "BGP|%u|STATE|%s|%u|%d|%d", ts, peer, e.peer_asn, o, n)) FAIL("oom");
            line = L;
        }
        return emit(D, &e, line) ? -1 : 0;
    }
    if (subtype <= 7) return 0; /* NULL, PREF_UPDATE, SYNC, OPEN, NOTIFY, KEEPALIVE: no elements */
    FAIL("unknown BGP subtype %d", subtype);
}

/* ------------------------------------------------------------------------------------------ */
/* record framing and resynchronisation                                                        */

#define MAX_RECORD (16u << 20)
#define MAX_MSG_RECORD 70000u

/* Types a collector's file can hold. The deprecated types 0-4 and 6-10 of RFC 6396 are left out:
 * no archive uses them, and "00 00 .." inside a damaged record would too often pass for them. */
static int type_known(int t) {
    return t == 5 || t == 11 || t == 12 || t == 13 || t == 16 || t == 17 || t == 32 || t == 33 || t == 48 ||
           t == 49;
}

/* Does a header look like an MRT record this stream could hold? */
/* With check_ts, the header's time must lie within a day before and a week after ref_ts. */
static int plausible(Decoder *D, const uint8_t *h, int check_ts, uint32_t ref_ts) {
    uint32_t ts = rd32(h), len = rd32(h + 8);
    int t = rd16(h + 4), st = rd16(h + 6);
    if (!type_known(t)) return 0;
    if (len > MAX_RECORD) return 0;
    switch (t) {
    case 5:
        if (st > 7 || len > MAX_MSG_RECORD) return 0;
        break;
    case 12:
        if (st < 1 || st > 4 || len < 20 || len > MAX_MSG_RECORD) return 0;
        break;
    case 13:
        if (st < 1 || st > 12 || len < 4) return 0;
        break;
    case 16:
    case 17:
        if (st > 11 || len < (t == 17 ? 12u : 8u) || len > MAX_MSG_RECORD) return 0;
        break;
    default:
        if (len == 0) return 0;
    }
    if (check_ts) {
        int64_t d = (int64_t)ts - (int64_t)ref_ts;
        if (d < -86400 || d > 7 * 86400) return 0;
    }
    return 1;
}

/* Types whose bodies carry their own lengths tightly enough that a clean parse proves the MRT
 * length right even when the next header looks wrong. */
static int self_checking(int t, int st) {
    return t == 13 || t == 12 || ((t == 16 || t == 17) && st != 2 && st != 3);
}

static int decode_record(Decoder *D, const uint8_t *h, uint32_t ts, int t, int st, size_t len) {
    const uint8_t *b = h + 12;
    switch (t) {
    case 13:
        if (st == 1) return do_peer_index(D, b, len);
        if ((st >= 2 && st <= 5) || (st >= 8 && st <= 11)) return do_rib_v2(D, b, len, ts, st);
        D->unsupported++;
        add_issue(D, D->rec_off, SEV_UNSUPPORTED, t, st, "TABLE_DUMP_V2 %s records are not decoded",
                  (st == 6 || st == 12) ? "RIB_GENERIC" : "unknown-subtype");
        return 0;
    case 12:
        return do_table_dump_v1(D, b, len, ts, st);
    case 16:
    case 17:
        return do_bgp4mp(D, b, len, ts, t, st);
    case 5:
        return do_bgp_legacy(D, b, len, ts, st);
    default:
        D->unsupported++;
        add_issue(D, D->rec_off, SEV_UNSUPPORTED, t, st, "MRT type %d records are not decoded", t);
        return 0;
    }
}

/* Elements of a record that failed half-way are taken back, so a damaged record adds nothing. */
typedef struct {
    size_t n, lines_off, lines_data, dprefix_off, dprefix_data, dprefix_count;
} mark_t;

static void mark_take(Decoder *D, mark_t *k) {
    k->n = D->n;
    k->lines_off = D->lines.off.n;
    k->lines_data = D->lines.data.n;
    k->dprefix_off = D->d_prefix.off.n;
    k->dprefix_data = D->d_prefix.data.n;
    k->dprefix_count = (size_t)D->d_prefix.count;
}

static void mark_rollback(Decoder *D, const mark_t *k) {
    size_t drop = D->n - k->n;
    if (!drop && (size_t)D->d_prefix.count == k->dprefix_count) return;
    D->elements -= (long long)drop;
    D->n = k->n;
    if (D->want_bgpdump) {
        D->lines.off.n = k->lines_off;
        D->lines.data.n = k->lines_data;
        D->lines.count = (int32_t)k->n;
    }
    D->d_prefix.off.n = k->dprefix_off;
    D->d_prefix.data.n = k->dprefix_data;
    D->d_prefix.count = (int32_t)k->dprefix_count;
}

/* Parse records in buf[pos:]. Returns the new position; *status is 0 (need more data or done),
 * 1 (a batch is full: call flush). */
static Py_ssize_t run(Decoder *D, const uint8_t *buf, Py_ssize_t size, Py_ssize_t pos, int64_t base, int eof,
                      int *status) {
    *status = 0;
    for (;;) {
        if (D->oom) return pos;
        if ((Py_ssize_t)D->n >= D->batch_size) {
            *status = 1;
            return pos;
        }
        Py_ssize_t avail = size - pos;
        if (D->resyncing) {
            /* the next record boundary: a plausible header whose record ends at another plausible
             * header, or exactly at the end of the stream */
            Py_ssize_t p = pos;
            int found = 0;
            for (; p + 12 <= size; p++) {
                const uint8_t *h = buf + p;
                if (!plausible(D, h, D->have_last_ts, D->last_ts)) continue;
                Py_ssize_t end = p + 12 + (Py_ssize_t)rd32(h + 8);
                if (end + 12 <= size) {
                    if (plausible(D, buf + end, 1, rd32(h))) {
                        found = 1;
                        break;
                    }
                    continue;
                }
                if (!eof) return p; /* judge this candidate when more data has arrived */
                if (end <= size) {
                    found = 1;
                    break;
                }
            }
            if (!found) {
                if (!eof) return p;
                int64_t skipped = base + size - D->damage_start;
                D->skipped_bytes += skipped;
                D->pending_skip = skipped;
                add_issue(D, D->damage_start, SEV_DAMAGED, D->damage_type, D->damage_subtype,
                          "%s; no further record boundary: %lld bytes to the end of the stream skipped",
                          D->damage_reason, (long long)skipped);
                D->resyncing = 0;
                D->done = 1;
                return size;
            }
            int64_t skipped = base + p - D->damage_start;
            D->skipped_bytes += skipped;
            D->pending_skip = skipped;
            add_issue(D, D->damage_start, SEV_DAMAGED, D->damage_type, D->damage_subtype,
                      "%s; skipped %lld bytes to the next record boundary at offset %lld", D->damage_reason,
                      (long long)skipped, (long long)(base + p));
            D->resyncing = 0;
            pos = p;
            continue;
        }
        if (avail < 12) {
            if (eof) {
                if (avail > 0) {
                    D->damaged++;
                    D->skipped_bytes += avail;
                    D->pending_skip = avail;
                    add_issue(D, base + pos, SEV_DAMAGED, -1, -1,
                              "truncated MRT header: the stream ends %lld bytes into it", (long long)avail);
                }
                D->done = 1;
                return size;
            }
            return pos;
        }
        const uint8_t *h = buf + pos;
        uint32_t ts = rd32(h), len = rd32(h + 8);
        int t = rd16(h + 4), st = rd16(h + 6);
        D->rec_off = base + pos;
        D->rec_type = t;
        D->rec_subtype = st;
        if (!plausible(D, h, 0, 0)) {
            D->damaged++;
            D->resyncing = 1;
            D->damage_start = base + pos;
            D->damage_type = t;
            D->damage_subtype = st;
            snprintf(D->damage_reason, sizeof D->damage_reason,
                     "implausible MRT header (type %d, subtype %d, length %u)", t, st, len);
            pos += 1;
            continue;
        }
        Py_ssize_t total = 12 + (Py_ssize_t)len;
        if (avail < total) {
            if (!eof) return pos;
            /* a cut-off last record, or a length field damaged upwards: look for intact records
             * after it before giving up on the rest of the stream */
            D->damaged++;
            D->resyncing = 1;
            D->damage_start = base + pos;
            D->damage_type = t;
            D->damage_subtype = st;
            snprintf(D->damage_reason, sizeof D->damage_reason,
                     "record declares %u bytes but the stream ends after %lld", len, (long long)(avail - 12));
            pos += 1;
            continue;
        }
        int next_ok;
        if (avail == total)
            next_ok = eof ? 1 : -1;
        else if (avail < total + 12)
            next_ok = eof ? 1 : -1; /* a truncated header follows: reported on its own */
        else
            next_ok = plausible(D, buf + pos + total, 0, 0);
        if (next_ok < 0) return pos; /* need the next header to judge this record */
        mark_t mk;
        mark_take(D, &mk);
        D->err[0] = 0;
        int rc = 0;
        if (!next_ok && !self_checking(t, st)) {
            rc = -1;
            snprintf(D->err, sizeof D->err, "its length (%u) does not end at a record boundary", len);
        } else {
            rc = decode_record(D, h, ts, t, st, len);
        }
        if (rc != 0) {
            mark_rollback(D, &mk);
            if (D->oom || strcmp(D->err, "out of memory") == 0) {
                D->oom = 1;
                return pos;
            }
            D->damaged++;
            if (next_ok) {
                /* framing is intact: skip exactly this record */
                D->skipped_bytes += total;
                D->pending_skip = total;
                add_issue(D, base + pos, SEV_DAMAGED, t, st, "%s; record skipped (%lld bytes)", D->err,
                          (long long)total);
                pos += total;
            } else {
                D->resyncing = 1;
                D->damage_start = base + pos;
                D->damage_type = t;
                D->damage_subtype = st;
                snprintf(D->damage_reason, sizeof D->damage_reason, "%.150s", D->err);
                pos += 1;
            }
            continue;
        }
        D->records++;
        D->have_last_ts = 1;
        D->last_ts = ts;
        pos += total;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Python interface                                                                            */

static void batch_reset(Decoder *D) {
    D->n = 0;
    buf_t *cols[] = {&D->l_flags, &D->l_origin, &D->l_lpref, &D->l_med, &D->l_originasn, &D->l_aggas};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) cols[i]->n = 0;
    strcol_t *sc[] = {&D->d_peer, &D->d_prefix, &D->lines, &D->l_path, &D->l_nh, &D->l_comm, &D->l_lcomm, &D->l_ecomm, &D->l_aggaddr};
    for (size_t i = 0; i < sizeof sc / sizeof *sc; i++)
        if (strcol_init(sc[i])) D->oom = 1;
    D->nlocal = 0;
    D->gen++;
    if (D->gen == 0) D->gen = 1;
}

static int Decoder_init(Decoder *D, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"bgpdump", "batch_size", NULL};
    int want = 0;
    Py_ssize_t bs = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|pn", kwlist, &want, &bs)) return -1;
    if (bs < 1) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be positive");
        return -1;
    }
    D->want_bgpdump = want;
    D->batch_size = bs;
    D->cache = calloc(CACHE_SLOTS, sizeof(cslot_t));
    if (!D->cache) {
        PyErr_NoMemory();
        return -1;
    }
    D->gen = 1;
    batch_reset(D);
    if (D->oom) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Decoder_dealloc(Decoder *D) {
    buf_t *cols[] = {&D->l_flags, &D->l_origin, &D->l_lpref, &D->l_med, &D->l_originasn, &D->l_aggas, &D->scratch,
                     &D->msg_attrs.text};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) buf_free(cols[i]);
    void *arrays[] = {D->c_type, D->c_rectype, D->c_safi, D->c_flags, D->c_ts,      D->c_orig, D->c_peer,
                      D->c_prefix, D->c_attr, D->c_peer_asn, D->c_path_id, D->c_old, D->c_new, D->peer_local,
                      D->peer_local_gen};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) free(arrays[i]);
    strcol_t *sc[] = {&D->d_peer, &D->d_prefix, &D->lines, &D->l_path, &D->l_nh, &D->l_comm, &D->l_lcomm, &D->l_ecomm, &D->l_aggaddr};
    for (size_t i = 0; i < sizeof sc / sizeof *sc; i++) strcol_free(sc[i]);
    if (D->cache) {
        for (uint32_t i = 0; i < CACHE_SLOTS; i++) {
            free(D->cache[i].key);
            buf_free(&D->cache[i].a.text);
        }
        free(D->cache);
    }
    free(D->wd.v);
    free(D->ann.v);
    for (int a = 0; a < 3; a++)
        for (int s = 0; s < 4; s++) {
            free(D->mp_ann[a][s].v);
            free(D->mp_wd[a][s].v);
        }
    free(D->asns);
    free(D->segs);
    free(D->peers);
    free(D->issues);
    Py_TYPE(D)->tp_free((PyObject *)D);
}

static PyObject *Decoder_decode(Decoder *D, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    long long base;
    int eof;
    if (!PyArg_ParseTuple(args, "y*nLp", &view, &pos, &base, &eof)) return NULL;
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "position outside the buffer");
        return NULL;
    }
    int status = 0;
    Py_ssize_t np;
    if (D->done) {
        np = view.len;
    } else {
        Py_BEGIN_ALLOW_THREADS;
        np = run(D, (const uint8_t *)view.buf, view.len, pos, base, eof, &status);
        Py_END_ALLOW_THREADS;
    }
    PyBuffer_Release(&view);
    if (D->oom) return PyErr_NoMemory();
    return Py_BuildValue("(ni)", np, status);
}

static PyObject *bytes_of(const void *p, size_t n) { return PyBytes_FromStringAndSize(p ? (const char *)p : "", (Py_ssize_t)n); }

static int put(PyObject *d, const char *k, PyObject *v) {
    if (!v) return -1;
    int r = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return r;
}

static int put_strcol(PyObject *d, const char *k, strcol_t *s) {
    PyObject *t = Py_BuildValue("(iNN)", s->count, bytes_of(s->off.p, s->off.n), bytes_of(s->data.p, s->data.n));
    return put(d, k, t);
}

/* pack one byte per element (0/1) into an Arrow validity bitmap */
static PyObject *bitmap(const uint8_t *flags, size_t n, uint8_t mask) {
    PyObject *o = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((n + 7) / 8));
    if (!o) return NULL;
    uint8_t *b = (uint8_t *)PyBytes_AS_STRING(o);
    memset(b, 0, (n + 7) / 8);
    for (size_t i = 0; i < n; i++)
        if (flags[i] & mask) b[i >> 3] |= (uint8_t)(1u << (i & 7));
    return o;
}

static PyObject *Decoder_flush(Decoder *D, PyObject *unused) {
    size_t n = D->n;
    if (n == 0) Py_RETURN_NONE;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    const uint8_t *ef = D->c_flags;
    const int32_t *attr = D->c_attr;
    const uint16_t *lf = (const uint16_t *)D->l_flags.p;
    /* per-element validity of attribute-derived fields */
    uint8_t *af = malloc(n ? n : 1);
    if (!af) {
        Py_DECREF(d);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < n; i++) af[i] = 0;
    int ok = 0;
    ok |= put(d, "n", PyLong_FromSize_t(n));
    ok |= put(d, "type", bytes_of(D->c_type, n));
    ok |= put(d, "record_type", bytes_of(D->c_rectype, n));
    ok |= put(d, "timestamp", bytes_of(D->c_ts, 8 * n));
    ok |= put(d, "peer", bytes_of(D->c_peer, 4 * n));
    ok |= put(d, "peer_valid", bitmap(ef, n, EF_PEERADDR));
    ok |= put(d, "peer_asn", bytes_of(D->c_peer_asn, 4 * n));
    ok |= put(d, "prefix", bytes_of(D->c_prefix, 4 * n));
    ok |= put(d, "prefix_valid", bitmap(ef, n, EF_PREFIX));
    ok |= put(d, "path_id", bytes_of(D->c_path_id, 4 * n));
    ok |= put(d, "path_id_valid", bitmap(ef, n, EF_PATHID));
    ok |= put(d, "attr", bytes_of(D->c_attr, 4 * n));
    ok |= put(d, "safi", bytes_of(D->c_safi, n));
    ok |= put(d, "safi_valid", bitmap(ef, n, EF_PREFIX));
    ok |= put(d, "originated", bytes_of(D->c_orig, 8 * n));
    ok |= put(d, "originated_valid", bitmap(ef, n, EF_ORIGINATED));
    ok |= put(d, "old_state", bytes_of(D->c_old, 2 * n));
    ok |= put(d, "new_state", bytes_of(D->c_new, 2 * n));
    ok |= put(d, "state_valid", bitmap(ef, n, EF_STATE));
    ok |= put_strcol(d, "d_peer", &D->d_peer);
    ok |= put_strcol(d, "d_prefix", &D->d_prefix);
    /* attribute-derived: validity per field, numeric fields expanded per element */
    static const struct {
        const char *name;
        uint16_t bit;
    } vf[] = {{"as_path_valid", LF_PATH},         {"next_hop_valid", LF_NH},
              {"communities_valid", LF_COMM},     {"large_communities_valid", LF_LCOMM},
              {"ext_communities_valid", LF_ECOMM}, {"aggregator_valid", LF_AGG},
              {"local_pref_valid", LF_LPREF},      {"med_valid", LF_MED},
              {"origin_asn_valid", LF_ORIGINASN},  {"origin_valid", LF_ORIGIN},
              {"attr_valid", 0}};
    for (size_t k = 0; k < sizeof vf / sizeof *vf; k++) {
        for (size_t i = 0; i < n; i++) af[i] = attr[i] >= 0 && (vf[k].bit == 0 || (lf[attr[i]] & vf[k].bit));
        ok |= put(d, vf[k].name, bitmap(af, n, 1));
    }
    PyObject *lp = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * n)), *md = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * n)),
             *oa = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * n)), *aa = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 * n)),
             *og = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n), *at = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((n + 7) / 8));
    if (lp && md && oa && aa && og && at) {
        uint32_t *plp = (uint32_t *)PyBytes_AS_STRING(lp), *pmd = (uint32_t *)PyBytes_AS_STRING(md),
                 *poa = (uint32_t *)PyBytes_AS_STRING(oa), *paa = (uint32_t *)PyBytes_AS_STRING(aa);
        uint8_t *pog = (uint8_t *)PyBytes_AS_STRING(og), *pat = (uint8_t *)PyBytes_AS_STRING(at);
        const uint32_t *llp = (const uint32_t *)D->l_lpref.p, *lmd = (const uint32_t *)D->l_med.p,
                       *loa = (const uint32_t *)D->l_originasn.p, *laa = (const uint32_t *)D->l_aggas.p;
        const uint8_t *log_ = (const uint8_t *)D->l_origin.p;
        memset(pat, 0, (n + 7) / 8);
        for (size_t i = 0; i < n; i++) {
            int32_t a = attr[i];
            if (a >= 0) {
                plp[i] = llp[a];
                pmd[i] = lmd[a];
                poa[i] = loa[a];
                paa[i] = laa[a];
                pog[i] = log_[a] == 255 ? 0 : log_[a];
                if (lf[a] & LF_ATOMIC) pat[i >> 3] |= (uint8_t)(1u << (i & 7));
            } else {
                plp[i] = pmd[i] = poa[i] = paa[i] = 0;
                pog[i] = 0;
            }
        }
    }
    ok |= put(d, "local_pref", lp);
    ok |= put(d, "med", md);
    ok |= put(d, "origin_asn", oa);
    ok |= put(d, "aggregator_asn", aa);
    ok |= put(d, "origin", og);
    ok |= put(d, "atomic_aggregate", at);
    ok |= put_strcol(d, "l_path", &D->l_path);
    ok |= put_strcol(d, "l_nh", &D->l_nh);
    ok |= put_strcol(d, "l_comm", &D->l_comm);
    ok |= put_strcol(d, "l_lcomm", &D->l_lcomm);
    ok |= put_strcol(d, "l_ecomm", &D->l_ecomm);
    ok |= put_strcol(d, "l_aggaddr", &D->l_aggaddr);
    if (D->want_bgpdump) {
        ok |= put_strcol(d, "lines", &D->lines);
        ok |= put(d, "lines_valid", bitmap(ef, n, EF_LINE));
    }
    free(af);
    if (ok) {
        Py_DECREF(d);
        return NULL;
    }
    batch_reset(D);
    if (D->oom) {
        Py_DECREF(d);
        return PyErr_NoMemory();
    }
    return d;
}

static PyObject *Decoder_take_issues(Decoder *D, PyObject *unused) {
    PyObject *l = PyList_New((Py_ssize_t)D->nissues);
    if (!l) return NULL;
    static const char *sev[] = {"damaged", "unsupported", "warning"};
    for (size_t i = 0; i < D->nissues; i++) {
        issue_t *is = &D->issues[i];
        PyObject *t = Py_BuildValue("(LLssii)", (long long)is->offset, (long long)is->skipped, sev[is->severity],
                                    is->reason, is->type, is->subtype);
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    D->nissues = 0;
    return l;
}

static PyObject *Decoder_stats(Decoder *D, PyObject *unused) {
    return Py_BuildValue("{sLsLsLsLsLsLsLsLsLsL}", "records", D->records, "elements", D->elements, "damaged_records",
                         D->damaged, "unsupported_records", D->unsupported, "skipped_bytes", D->skipped_bytes,
                         "bgp_messages", D->bgp_messages, "updates", D->updates, "warnings", D->warnings,
                         "issues", D->n_issues_total, "issues_not_kept", D->n_issues_dropped);
}

static PyMethodDef Decoder_methods[] = {
    {"decode", (PyCFunction)Decoder_decode, METH_VARARGS,
     "decode(buffer, pos, base_offset, eof) -> (new_pos, status): parse records from buffer[pos:]; "
     "status 1 means a batch is ready (call flush)."},
    {"flush", (PyCFunction)Decoder_flush, METH_NOARGS, "flush() -> dict of column buffers, or None if empty."},
    {"take_issues", (PyCFunction)Decoder_take_issues, METH_NOARGS,
     "take_issues() -> [(offset, skipped_bytes, severity, reason, type, subtype)] since the last call."},
    {"stats", (PyCFunction)Decoder_stats, METH_NOARGS, "stats() -> dict of counters."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "transitwatch.mrt._decoder.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Streaming MRT decoder producing column buffers of BGP elements.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

static PyObject *record_types(PyObject *self, PyObject *unused) {
    PyObject *l = PyList_New(N_RECTYPES);
    if (!l) return NULL;
    for (int i = 0; i < N_RECTYPES; i++) PyList_SET_ITEM(l, i, PyUnicode_FromString(RECTYPES[i]));
    return l;
}

static PyMethodDef module_methods[] = {
    {"record_types", record_types, METH_NOARGS, "The record type names, indexed by their codes."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_decoder", "transitwatch's compiled MRT decoder.", -1,
                                       module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__decoder(void) {
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
