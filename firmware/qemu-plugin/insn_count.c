/*
 * insn_count: a QEMU TCG plugin that counts executed guest instructions.
 *
 * Counts, for one vCPU (the Cortex-M boards have one; more are refused):
 *   - every instruction executed (`total`);
 *   - instructions whose address lies in a half-open range [LO, HI) (`range=NAME:LO-HI`,
 *     repeatable; e.g. a function's symbol address and address + size). These are
 *     *exclusive* counts: instructions of functions the range calls are not in it;
 *   - with `calls=on`, per range: `entries`, the moves into the range from outside it (an
 *     instruction in the range executed right after one outside it: calls, and returns
 *     from the functions it calls), `calls`, the entries at LO itself (a function's first
 *     instruction: one per call), and the range's instructions per call (min / max;
 *     insns / calls is the mean);
 *   - spans (`span=NAME:BEGIN-END`, repeatable): a span opens when the instruction at
 *     address BEGIN executes and closes when the one at END executes; it counts every
 *     instruction executed in between (*inclusive*: callees included), from BEGIN up to,
 *     not including, END. A BEGIN while open restarts the span; an END while closed is
 *     ignored. Several spans may share a BEGIN or an END. Per span: count, sum, min, max.
 *
 * Arguments (QEMU: -plugin path/libinsn_count.so,ARG=VALUE,...): range=, span=, calls=on,
 * out=PATH (write the report there instead of to stderr).
 * Addresses are C integers (0x... for hex). On Thumb targets pass even addresses (the
 * symbol table's odd function addresses carry the Thumb bit).
 *
 * Report, one line each, at exit:
 *   total N
 *   range NAME LO HI insns N [calls C entries E min A max B]
 *   span NAME BEGIN END count C sum S min A max B
 *
 * Counting is deterministic: an inline add is attached to every translated instruction
 * (instrumentation runs before the instruction, so an instruction counts when it starts);
 * entries and spans use per-instruction callbacks only on the few instructions where a
 * range can be entered or a span begins or ends.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_ITEMS 64
#define NAME_LEN 96

struct range {
    char name[NAME_LEN];
    uint64_t lo, hi;
    uint64_t insns;        /* instructions executed in [lo, hi) */
    uint64_t entries;      /* entries from outside (calls=on): calls and returns */
    uint64_t calls;        /* entries from outside at lo (calls=on) */
    uint64_t last_outside; /* total - insns at the last entry check */
    uint64_t at_entry;     /* insns at the last call */
    uint64_t min, max;     /* instructions per call */
};

struct span {
    char name[NAME_LEN];
    uint64_t begin, end;
    int open;
    uint64_t start; /* total when the span opened */
    uint64_t count, sum, min, max;
};

static uint64_t total;
static struct range ranges[MAX_ITEMS];
static struct span spans[MAX_ITEMS];
static int n_ranges, n_spans;
static bool track_calls;
static char out_path[1024];

static void record(uint64_t *min, uint64_t *max, uint64_t n, uint64_t count)
{
    if (count == 0 || n < *min) {
        *min = n;
    }
    if (count == 0 || n > *max) {
        *max = n;
    }
}

/* Closes the current call of `r` (the instructions in `r` since its entry). */
static void close_call(struct range *r)
{
    uint64_t n = r->insns - r->at_entry;
    record(&r->min, &r->max, n, r->calls - 1);
}

/*
 * Runs before each instruction of `r` whose predecessor may lie outside `r`: the first
 * instruction of a translation block, or one that follows an outside instruction within
 * the block. Every move from outside into `r` happens at such an instruction, so an
 * outside instruction ran since the previous check exactly when total - insns changed
 * (the current instruction, inside `r`, adds to both or to neither). Returns whether the
 * previous instruction was outside `r`.
 */
static int entered(struct range *r)
{
    uint64_t outside = total - r->insns;
    int from_outside = outside != r->last_outside;
    r->last_outside = outside;
    if (from_outside) {
        r->entries++;
    }
    return from_outside;
}

/* A possible entry at an instruction other than the range's first (a callee returning). */
static void range_entry(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    entered(udata);
}

/* A possible entry at the range's first instruction: from outside, that is a call. */
static void range_call(unsigned int vcpu, void *udata)
{
    struct range *r = udata;
    (void)vcpu;
    if (entered(r)) {
        if (r->calls > 0) {
            close_call(r);
        }
        r->calls++;
        r->at_entry = r->insns;
    }
}

static void span_begin(unsigned int vcpu, void *udata)
{
    struct span *s = udata;
    (void)vcpu;
    s->open = 1;
    s->start = total;
}

static void span_end(unsigned int vcpu, void *udata)
{
    struct span *s = udata;
    uint64_t n;
    (void)vcpu;
    if (!s->open) {
        return;
    }
    n = total - s->start;
    record(&s->min, &s->max, n, s->count);
    s->count++;
    s->sum += n;
    s->open = 0;
}

static int in_range(const struct range *r, uint64_t pc)
{
    return pc >= r->lo && pc < r->hi;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t prev = 0;
    (void)id;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* Callbacks first: they see the counters before this instruction's adds. */
        for (int k = 0; k < n_ranges; k++) {
            struct range *r = &ranges[k];
            if (track_calls && in_range(r, pc) && (i == 0 || !in_range(r, prev))) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn,
                                                       pc == r->lo ? range_call : range_entry,
                                                       QEMU_PLUGIN_CB_NO_REGS, r);
            }
        }
        for (int k = 0; k < n_spans; k++) {
            struct span *s = &spans[k];
            if (pc == s->end) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, span_end,
                                                       QEMU_PLUGIN_CB_NO_REGS, s);
            }
            if (pc == s->begin) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, span_begin,
                                                       QEMU_PLUGIN_CB_NO_REGS, s);
            }
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                   &total, 1);
        for (int k = 0; k < n_ranges; k++) {
            if (in_range(&ranges[k], pc)) {
                qemu_plugin_register_vcpu_insn_exec_inline(
                    insn, QEMU_PLUGIN_INLINE_ADD_U64, &ranges[k].insns, 1);
            }
        }
        prev = pc;
    }
}

static void report(qemu_plugin_id_t id, void *udata)
{
    FILE *f = NULL;
    (void)id;
    (void)udata;
    if (out_path[0]) {
        f = fopen(out_path, "w");
        if (!f) {
            fprintf(stderr, "insn_count: cannot write %s\n", out_path);
        }
    }
#define EMIT(...) fprintf(f ? f : stderr, __VA_ARGS__)
    EMIT("total %" PRIu64 "\n", total);
    for (int k = 0; k < n_ranges; k++) {
        struct range *r = &ranges[k];
        if (track_calls) {
            if (r->calls > 0) {
                close_call(r);
            }
            EMIT("range %s 0x%" PRIx64 " 0x%" PRIx64 " insns %" PRIu64 " calls %" PRIu64
                 " entries %" PRIu64 " min %" PRIu64 " max %" PRIu64 "\n",
                 r->name, r->lo, r->hi, r->insns, r->calls, r->entries, r->min, r->max);
        } else {
            EMIT("range %s 0x%" PRIx64 " 0x%" PRIx64 " insns %" PRIu64 "\n", r->name, r->lo,
                 r->hi, r->insns);
        }
    }
    for (int k = 0; k < n_spans; k++) {
        struct span *s = &spans[k];
        EMIT("span %s 0x%" PRIx64 " 0x%" PRIx64 " count %" PRIu64 " sum %" PRIu64
             " min %" PRIu64 " max %" PRIu64 "\n",
             s->name, s->begin, s->end, s->count, s->sum, s->min, s->max);
    }
#undef EMIT
    if (f) {
        fclose(f);
    }
}

/*
 * Parses "NAME:A-B" (or "A-B", then the name is the text itself) into name, a, b.
 * Returns 0 on success.
 */
static int parse_pair(const char *val, char *name, uint64_t *a, uint64_t *b)
{
    const char *colon = strrchr(val, ':');
    const char *nums = colon ? colon + 1 : val;
    size_t len = colon ? (size_t)(colon - val) : strlen(val);
    char *end;
    if (len == 0 || len >= NAME_LEN) {
        return -1;
    }
    memcpy(name, val, len);
    name[len] = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == ' ' || name[i] == '\t') {
            return -1;
        }
    }
    *a = strtoull(nums, &end, 0);
    if (end == nums || *end != '-') {
        return -1;
    }
    nums = end + 1;
    *b = strtoull(nums, &end, 0);
    if (end == nums || *end != 0) {
        return -1;
    }
    return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    if (info->system_emulation && info->system.smp_vcpus > 1) {
        fprintf(stderr, "insn_count: counts one vCPU; got %d\n", info->system.smp_vcpus);
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        const char *val = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (klen == 5 && !strncmp(arg, "range", 5)) {
            struct range *r;
            if (n_ranges == MAX_ITEMS) {
                fprintf(stderr, "insn_count: more than %d ranges\n", MAX_ITEMS);
                return -1;
            }
            r = &ranges[n_ranges];
            r->last_outside = UINT64_MAX;
            if (parse_pair(val, r->name, &r->lo, &r->hi) || r->lo >= r->hi) {
                fprintf(stderr, "insn_count: bad range '%s' (want NAME:LO-HI, LO < HI)\n", val);
                return -1;
            }
            n_ranges++;
        } else if (klen == 4 && !strncmp(arg, "span", 4)) {
            struct span *s;
            if (n_spans == MAX_ITEMS) {
                fprintf(stderr, "insn_count: more than %d spans\n", MAX_ITEMS);
                return -1;
            }
            s = &spans[n_spans];
            if (parse_pair(val, s->name, &s->begin, &s->end) || s->begin == s->end) {
                fprintf(stderr, "insn_count: bad span '%s' (want NAME:BEGIN-END)\n", val);
                return -1;
            }
            n_spans++;
        } else if (klen == 5 && !strncmp(arg, "calls", 5)) {
            if (!qemu_plugin_bool_parse("calls", val, &track_calls)) {
                fprintf(stderr, "insn_count: bad calls '%s' (on or off)\n", val);
                return -1;
            }
        } else if (klen == 3 && !strncmp(arg, "out", 3)) {
            if (strlen(val) >= sizeof out_path) {
                fprintf(stderr, "insn_count: out path too long\n");
                return -1;
            }
            strcpy(out_path, val);
        } else {
            fprintf(stderr, "insn_count: unknown argument '%s' (range=, span=, calls=, out=)\n",
                    arg);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
