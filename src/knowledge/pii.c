/*
 * pii.c — rule-based redaction of personal data and secrets in text.
 *
 * What is redacted (checked in this order at each position, leftmost match
 * first, matches never overlap):
 *
 *   [SECRET]  PEM private keys: "-----BEGIN ... PRIVATE KEY-----" through the
 *             matching "-----END ... PRIVATE KEY-----" (without an END line:
 *             through the end of the text). AWS access key ids AKIA/ASIA +
 *             16 [A-Z0-9]; OpenAI-style "sk-" + 20 or more [A-Za-z0-9_-]
 *             with upper and lower case letters and digits (sk-proj-...,
 *             sk-ant-...; not "sk-ecdsa-sha2-nistp256-..."); GitHub tokens ghp_/gho_/ghu_/ghs_/ghr_
 *             + 36 or more alphanumerics and github_pat_ + 22 or more
 *             [A-Za-z0-9_]; Slack xoxb-/xoxp-/xoxa-/xoxr-/xoxs- + 10 or more;
 *             Stripe sk_live_/rk_live_/sk_test_ + 16 or more; Google API keys
 *             "AIza" + 35 [A-Za-z0-9_-]. All need a non-word character (or the
 *             text start/end) on both sides.
 *   [EMAIL]   local@domain with local part [A-Za-z0-9._%+-] (not starting or
 *             ending with '.'), a domain of at least two dot-separated labels
 *             of [A-Za-z0-9-] and a final label of 2+ letters that is not a
 *             common file extension (icon@2x.png is a file name). Not
 *             redacted: user@host without a dot (shell prompts, git remotes
 *             like git@host), "@decorators", Python/Perl "@list". Known false
 *             positive: e-mail-shaped identifiers such as ssh's algorithm
 *             names "...-cert-v01@openssh.com" are redacted.
 *   [IBAN]    two uppercase letters, two digits, 11-30 uppercase letters or
 *             digits (spaces allowed between groups of 4), passing the ISO
 *             13616 mod-97 check.
 *   [CARD]    13-19 digits, optionally in groups separated by single spaces or
 *             dashes, with the prefix and length of a major network (Visa 4:
 *             13/16/19; Mastercard 51-55, 2221-2720: 16; Amex 34/37: 15;
 *             Discover, JCB, Diners, UnionPay, Maestro ranges), passing the
 *             Luhn check, printed without separators or in groups of 4 (Amex
 *             4-6-5, Diners 4-6-4). Luhn-failing runs, other ids, columns of
 *             numbers (a digit group follows) and hex dump groups are kept.
 *   [IP]      IPv6: 8 groups of 1-4 hex digits, or a "::"-compressed form with
 *             at least 3 groups (so C++ "a::b" and times "12:30:45" are kept;
 *             MAC addresses have 6 groups and are kept), optionally with a
 *             dotted IPv4 tail; not next to [A-Za-z0-9_:.].
 *             IPv4: four dot-separated numbers 0-255 without leading zeros, not
 *             part of a longer dotted run (1.2.3.4.5 is kept) and not directly
 *             after "v"/"V" or the words version, release, ver, since,
 *             section, rev, revision, build, firmware, kernel (so "version
 *             1.2.3.4" and "section 8.1.2.2" are kept — a real address after
 *             those words is missed, a documented trade-off). Example
 *             addresses in documentation (192.168.0.1) are redacted like any.
 *   [PHONE]   numbers with a leading '+' and country code: '+' then 7-15 digits
 *             in groups separated by single spaces, dashes, dots or an
 *             optional "(0)"/"(area)" group, at least two groups; and North
 *             American 3-3-4 numbers ("(555) 123-4567", "555-123-4567",
 *             "555.123.4567", "555 123 4567", optionally "1-" / "+1 " in
 *             front). Not redacted: ISO dates (2024-01-15), dd.mm.yyyy and
 *             mm/dd/yyyy dates, times, plain digit runs without separators
 *             (order numbers, ids), domestic formats of other countries
 *             without '+' (too ambiguous with other numbers).
 *
 * Counts: ipv4 and ipv6 are counted separately; both are replaced by [IP].
 */
#include "ingest_internal.h"

#include <string.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
static bool is_word(char c) { return is_alnum(c) || c == '_' || (unsigned char)c >= 0x80; }
static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* ---- secrets --------------------------------------------------------------------- */

static size_t run_of(const char *s, size_t n, size_t i, const char *extra) {
    size_t j = i;
    while (j < n && (is_alnum(s[j]) || (extra && s[j] && strchr(extra, s[j])))) j++;
    return j - i;
}

static size_t match_pem(const char *s, size_t n, size_t i) {
    static const char begin[] = "-----BEGIN ";
    if (n - i < sizeof begin - 1 || memcmp(s + i, begin, sizeof begin - 1) != 0) return 0;
    size_t e = i + sizeof begin - 1;
    size_t le = e;
    while (le < n && s[le] != '\n' && le - e < 64) le++;
    /* the label must end in "PRIVATE KEY-----" */
    const char *pk = "PRIVATE KEY-----";
    size_t pl = strlen(pk);
    bool found = false;
    for (size_t k = e; k + pl <= le; k++)
        if (memcmp(s + k, pk, pl) == 0) {
            found = true;
            break;
        }
    if (!found) return 0;
    for (size_t k = le; k + 9 <= n; k++) {
        if (memcmp(s + k, "-----END ", 9) == 0) {
            size_t m = k + 9;
            while (m < n && s[m] != '\n') {
                if (m + 5 <= n && memcmp(s + m, "-----", 5) == 0) return m + 5 - i;
                m++;
            }
            return m - i;
        }
    }
    return n - i;
}

static size_t match_secret(const char *s, size_t n, size_t i) {
    if (i > 0 && is_word(s[i - 1])) return 0;
    size_t m = n - i;
    const char *p = s + i;
    size_t len = 0;
    if (m >= 20 && (memcmp(p, "AKIA", 4) == 0 || memcmp(p, "ASIA", 4) == 0)) {
        size_t k = 4;
        while (k < m && k < 20 && (is_upper(p[k]) || is_digit(p[k]))) k++;
        if (k == 20) len = 20;
    } else if (m >= 23 && memcmp(p, "sk-", 3) == 0) {
        /* keys are random: upper and lower case letters and digits (not "sk-ecdsa-sha2-nistp256-...") */
        size_t r = run_of(s, n, i + 3, "_-");
        bool up = false, lo = false, dg = false;
        for (size_t k = i + 3; k < i + 3 + r; k++) up |= is_upper(s[k]), lo |= s[k] >= 'a' && s[k] <= 'z', dg |= is_digit(s[k]);
        if (r >= 20 && up && lo && dg) len = 3 + r;
    } else if (m >= 40 && p[0] == 'g' && p[1] == 'h' && strchr("pousr", p[2]) && p[3] == '_') {
        size_t r = run_of(s, n, i + 4, NULL);
        if (r >= 36) len = 4 + r;
    } else if (m >= 33 && memcmp(p, "github_pat_", 11) == 0) {
        size_t r = run_of(s, n, i + 11, "_");
        if (r >= 22) len = 11 + r;
    } else if (m >= 15 && memcmp(p, "xox", 3) == 0 && strchr("bpars", p[3]) && p[4] == '-') {
        size_t r = run_of(s, n, i + 5, "-");
        if (r >= 10) len = 5 + r;
    } else if (m >= 24 && (memcmp(p, "sk_live_", 8) == 0 || memcmp(p, "rk_live_", 8) == 0 ||
                           memcmp(p, "sk_test_", 8) == 0)) {
        size_t r = run_of(s, n, i + 8, NULL);
        if (r >= 16) len = 8 + r;
    } else if (m >= 39 && memcmp(p, "AIza", 4) == 0) {
        size_t r = run_of(s, n, i + 4, "_-");
        if (r == 35) len = 39;
    }
    if (len && i + len < n && is_word(s[i + len])) return 0;
    return len;
}

/* ---- e-mail ---------------------------------------------------------------------- */

static bool local_ch(char c) { return is_alnum(c) || (c && strchr("._%+-", c)); }

/* at s[i] == '@': returns [a, b) of the address or false */
static bool match_email_at(const char *s, size_t n, size_t at, size_t lo, size_t *a, size_t *b) {
    size_t l = at;
    while (l > lo && local_ch(s[l - 1])) l--;
    while (l < at && s[l] == '.') l++;
    if (l == at || s[at - 1] == '.') return false;
    if (l > 0 && (s[l - 1] == '@' || is_word(s[l - 1]))) return false;
    size_t d = at + 1, labels = 0, last_s = d;
    size_t k = d;
    for (;;) {
        size_t ls = k;
        while (k < n && (is_alnum(s[k]) || s[k] == '-')) k++;
        if (k == ls) break;
        labels++;
        last_s = ls;
        if (k + 1 < n && s[k] == '.' && (is_alnum(s[k + 1]))) {
            k++;
            continue;
        }
        break;
    }
    if (labels < 2) return false;
    size_t tl = k - last_s;
    if (tl < 2) return false;
    for (size_t x = last_s; x < k; x++)
        if (!is_alpha(s[x])) return false;
    if (k < n && (is_word(s[k]) || s[k] == '@')) return false;
    static const char *const ext[] = {"png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ts", "json",
                                      "html", "htm", "txt", "md", "pdf", "ico", "py", "rb", "sh", "c", "h"};
    for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++)
        if (strlen(ext[e]) == tl && strncasecmp(s + last_s, ext[e], tl) == 0) return false;
    *a = l;
    *b = k;
    return true;
}

/* ---- IBAN, card ------------------------------------------------------------------ */

static size_t match_iban(const char *s, size_t n, size_t i) {
    if (i > 0 && is_word(s[i - 1])) return 0;
    if (n - i < 15 || !is_upper(s[i]) || !is_upper(s[i + 1]) || !is_digit(s[i + 2]) || !is_digit(s[i + 3])) return 0;
    char buf[40];
    size_t k = 0, j = i, end = i;
    while (j < n && k < 34) {
        if (is_upper(s[j]) || is_digit(s[j])) {
            buf[k++] = s[j++];
            end = j;
        } else if (s[j] == ' ' && k % 4 == 0 && j + 1 < n && (is_upper(s[j + 1]) || is_digit(s[j + 1])))
            j++;
        else
            break;
    }
    if (k < 15) return 0;
    if (end < n && is_word(s[end])) return 0;
    /* mod 97 over the rearranged string, letters as 10..35 */
    unsigned rem = 0;
    for (size_t x = 0; x < k; x++) {
        char c = buf[(x + 4) % k];
        if (is_digit(c)) rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else {
            unsigned v = (unsigned)(c - 'A' + 10);
            rem = (rem * 100 + v) % 97;
        }
    }
    return rem == 1 ? end - i : 0;
}

/* issuer prefix and length of the major networks (so 19-digit ids that happen to pass Luhn are kept) */
static bool card_issuer(const int *d, int nd) {
    int p2 = d[0] * 10 + d[1], p3 = p2 * 10 + d[2], p4 = p3 * 10 + d[3];
    if (d[0] == 4) return nd == 13 || nd == 16 || nd == 19;                              /* Visa */
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return nd == 16;          /* Mastercard */
    if (p2 == 34 || p2 == 37) return nd == 15;                                           /* American Express */
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649)) return nd >= 16;             /* Discover */
    if (p4 >= 3528 && p4 <= 3589) return nd >= 16;                                       /* JCB */
    if (p2 == 36 || p2 == 38 || p2 == 39 || (p3 >= 300 && p3 <= 305)) return nd >= 14;  /* Diners */
    if (p2 == 62) return nd >= 16;                                                       /* UnionPay */
    if (p2 == 50 || (p2 >= 56 && p2 <= 69)) return true;                                 /* Maestro */
    return false;
}

static size_t match_card(const char *s, size_t n, size_t i) {
    if (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == '+')) return 0;
    if (!is_digit(s[i]) || s[i] < '2' || s[i] > '6') return 0;
    /* a column of a hex dump or table: the previous token is a group of 4 hex digits */
    if (i >= 5 && s[i - 1] == ' ' && is_hex(s[i - 2]) && is_hex(s[i - 3]) && is_hex(s[i - 4]) && is_hex(s[i - 5]) &&
        (i == 5 || !is_word(s[i - 6])))
        return 0;
    int d[20], groups[20];
    int nd = 0, ng = 0, gl = 0;
    size_t j = i, end = i;
    char sep = 0;
    while (j < n && nd < 20) {
        if (is_digit(s[j])) {
            d[nd++] = s[j] - '0';
            gl++;
            end = ++j;
        } else if ((s[j] == ' ' || s[j] == '-') && j + 1 < n && is_digit(s[j + 1]) && (!sep || sep == s[j]) && ng < 19) {
            sep = s[j];
            groups[ng++] = gl;
            gl = 0;
            j++;
        } else
            break;
    }
    groups[ng++] = gl;
    if (nd < 13 || nd > 19 || !card_issuer(d, nd)) return 0;
    if (end < n && (is_word(s[end]) || (s[end] == '.' && end + 1 < n && is_digit(s[end + 1])))) return 0;
    /* more digit groups follow: a longer run of numbers, not a card */
    if (end + 1 < n && (s[end] == ' ' || s[end] == '-') && is_digit(s[end + 1])) return 0;
    /* printed groupings: none, 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4 */
    if (ng > 1) {
        bool fours = true;
        for (int g = 0; g + 1 < ng; g++)
            if (groups[g] != 4) fours = false;
        bool amex = ng == 3 && groups[0] == 4 && groups[1] == 6 && (groups[2] == 5 || groups[2] == 4);
        if (!(fours && groups[ng - 1] >= 1 && groups[ng - 1] <= 4) && !amex) return 0;
    }
    int sum = 0;
    for (int k = 0; k < nd; k++) {
        int v = d[nd - 1 - k];
        if (k % 2 == 1) {
            v *= 2;
            if (v > 9) v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0 ? end - i : 0;
}

/* ---- IP addresses ---------------------------------------------------------------- */

/* dotted quad at s[i]; returns its length */
static size_t ipv4_at(const char *s, size_t n, size_t i) {
    size_t j = i;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (j >= n || s[j] != '.') return 0;
            j++;
        }
        size_t st = j;
        int v = 0;
        while (j < n && is_digit(s[j]) && j - st < 4) v = v * 10 + (s[j++] - '0');
        size_t l = j - st;
        if (l == 0 || l > 3 || v > 255 || (l > 1 && s[st] == '0')) return 0;
    }
    return j - i;
}

static size_t match_ipv4(const char *s, size_t n, size_t i) {
    if (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '.')) return 0;
    size_t l = ipv4_at(s, n, i);
    if (!l) return 0;
    size_t e = i + l;
    if (e < n && (is_word(s[e]) || (s[e] == '.' && e + 1 < n && is_alnum(s[e + 1])))) return 0;
    /* version numbers: one of these words directly before, or two words before ("since dpkg 1.17.14.1") */
    static const char *const before[] = {"version", "release", "ver", "since", "section", "rev", "revision",
                                          "build", "firmware", "kernel", "v"};
    size_t b = i;
    for (int w = 0; w < 2; w++) {
        while (b > 0 && s[b - 1] == ' ') b--;
        size_t ws = b;
        while (ws > 0 && (is_alnum(s[ws - 1]) || s[ws - 1] == '-')) ws--;
        size_t wl = b - ws;
        for (size_t k = 0; k < sizeof before / sizeof before[0]; k++)
            if (strlen(before[k]) == wl && strncasecmp(s + ws, before[k], wl) == 0) return 0;
        if (wl == 0 || ws == 0 || s[ws - 1] != ' ') break;
        b = ws;
    }
    return l;
}

static size_t match_ipv6(const char *s, size_t n, size_t i) {
    if (i > 0 && (is_word(s[i - 1]) || s[i - 1] == ':' || s[i - 1] == '.')) return 0;
    if (!is_hex(s[i]) && s[i] != ':') return 0;
    size_t j = i;
    int groups = 0;
    bool dbl = false;
    size_t end = i;
    if (j + 1 < n && s[j] == ':' && s[j + 1] == ':') {
        dbl = true;
        j += 2;
        end = j;
    } else if (s[j] == ':')
        return 0;
    while (j < n && groups < 8) {
        /* an IPv4 tail */
        size_t l4 = ipv4_at(s, n, j);
        if (l4 && groups <= 6 && (dbl || groups == 6)) {
            groups += 2;
            j += l4;
            end = j;
            break;
        }
        size_t st = j;
        while (j < n && is_hex(s[j]) && j - st < 5) j++;
        size_t gl = j - st;
        if (gl == 0 || gl > 4) {
            j = st;
            break;
        }
        groups++;
        end = j;
        if (j + 1 < n && s[j] == ':' && s[j + 1] == ':') {
            if (dbl) break;
            dbl = true;
            j += 2;
            end = j;
            continue;
        }
        if (j + 1 < n && s[j] == ':' && is_hex(s[j + 1])) {
            j++;
            continue;
        }
        break;
    }
    if (end < n && (is_word(s[end]) || s[end] == ':' || (s[end] == '.' && end + 1 < n && is_alnum(s[end + 1]))))
        return 0;
    if (dbl ? (groups < 3 || groups > 7) : groups != 8) return 0;
    /* a compressed form needs a digit somewhere, or it is likely a word ("add::bad::cafe") */
    bool digit = false;
    for (size_t k = i; k < end; k++)
        if (is_digit(s[k])) digit = true;
    if (!digit) return 0;
    return end - i;
}

/* ---- phones ---------------------------------------------------------------------- */

/* NANP: [+1 |1-](NNN) NNN-NNNN etc. */
static size_t match_nanp(const char *s, size_t n, size_t i) {
    size_t j = i;
    if (j + 1 < n && s[j] == '+' && s[j + 1] == '1') {
        j += 2;
        if (j < n && (s[j] == ' ' || s[j] == '-' || s[j] == '.')) j++;
    } else if (j + 1 < n && s[j] == '1' && (s[j + 1] == '-' || s[j + 1] == ' ' || s[j + 1] == '.')) {
        j += 2;
    }
    bool paren = j < n && s[j] == '(';
    if (paren) j++;
    for (int k = 0; k < 3; k++)
        if (j >= n || !is_digit(s[j++])) return 0;
    if (paren) {
        if (j >= n || s[j] != ')') return 0;
        j++;
        if (j < n && s[j] == ' ') j++;
    } else {
        if (j >= n || (s[j] != '-' && s[j] != '.' && s[j] != ' ')) return 0;
        j++;
    }
    char sep = s[j - 1];
    for (int k = 0; k < 3; k++)
        if (j >= n || !is_digit(s[j++])) return 0;
    if (j >= n || (s[j] != '-' && s[j] != '.' && s[j] != ' ')) return 0;
    if (!paren && s[j] != sep) return 0; /* 555-123.4567 is not a phone */
    j++;
    for (int k = 0; k < 4; k++)
        if (j >= n || !is_digit(s[j++])) return 0;
    if (j < n && (is_word(s[j]) || ((s[j] == '-' || s[j] == '.') && j + 1 < n && is_digit(s[j + 1])))) return 0;
    return j - i;
}

static size_t match_intl(const char *s, size_t n, size_t i) {
    if (s[i] != '+' || i + 1 >= n || !is_digit(s[i + 1]) || s[i + 1] == '0') return 0;
    size_t j = i + 1, end = i;
    int digits = 0, groups = 0;
    while (j < n) {
        if (s[j] == '(') { /* (0) or (area) */
            size_t k = j + 1;
            while (k < n && is_digit(s[k]) && k - j <= 5) k++;
            if (k < n && s[k] == ')' && k > j + 1) {
                digits += (int)(k - j - 1);
                groups++;
                j = k + 1;
                end = j;
                if (j < n && s[j] == ' ') j++;
                continue;
            }
            break;
        }
        size_t st = j;
        while (j < n && is_digit(s[j])) j++;
        if (j == st) break;
        digits += (int)(j - st);
        groups++;
        end = j;
        if (j + 1 < n && (s[j] == ' ' || s[j] == '-' || s[j] == '.') && (is_digit(s[j + 1]) || s[j + 1] == '(')) {
            j++;
            continue;
        }
        break;
    }
    if (digits < 7 || digits > 15 || groups < 2) return 0;
    if (end < n && is_word(s[end])) return 0;
    return end - i;
}

static size_t match_phone(const char *s, size_t n, size_t i) {
    if (i > 0 && (is_word(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == '/' || s[i - 1] == '+'))
        return 0;
    size_t l = match_nanp(s, n, i);
    if (l) return l;
    return match_intl(s, n, i);
}

/* ---- driver ----------------------------------------------------------------------- */

qai_status qai_pii_redact(const char *text, size_t n, char **out, size_t *out_len, qai_pii_counts *counts) {
    qai_pii_counts c = {0};
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!text && n) return qai_error(QAI_ERR_ARG, "pii: no text");
    const char *s = text ? text : "";
    qai_strbuf o = {0};
    if (!qai_strbuf_reserve(&o, n + n / 8 + 64)) return qai_error(QAI_ERR_NOMEM, "pii: out of memory");
    size_t i = 0, copied = 0;
    size_t email_lo = 0; /* e-mail local parts never reach back into an earlier match */
    while (i < n) {
        char ch = s[i];
        size_t l = 0;
        const char *rep = NULL;
        int *cnt = NULL;
        size_t ms = i; /* match start (e-mail starts before '@') */
        if (ch == '-' && (l = match_pem(s, n, i))) rep = "[SECRET]", cnt = &c.secrets;
        else if ((ch == 'A' || ch == 's' || ch == 'g' || ch == 'x' || ch == 'r') && (l = match_secret(s, n, i)))
            rep = "[SECRET]", cnt = &c.secrets;
        else if (ch == '@') {
            size_t a, b;
            if (match_email_at(s, n, i, email_lo > copied ? email_lo : copied, &a, &b)) {
                ms = a;
                l = b - a;
                rep = "[EMAIL]", cnt = &c.emails;
            }
        } else if (is_upper(ch) && (l = match_iban(s, n, i)))
            rep = "[IBAN]", cnt = &c.ibans;
        else if (is_digit(ch) && (l = match_card(s, n, i)))
            rep = "[CARD]", cnt = &c.cards;
        if (!rep && (is_hex(ch) || ch == ':') && (l = match_ipv6(s, n, i))) rep = "[IP]", cnt = &c.ipv6;
        if (!rep && is_digit(ch) && (l = match_ipv4(s, n, i))) rep = "[IP]", cnt = &c.ipv4;
        if (!rep && (is_digit(ch) || ch == '+' || ch == '(') && (l = match_phone(s, n, i))) rep = "[PHONE]", cnt = &c.phones;
        if (rep) {
            if (ms < copied) ms = copied;
            qai_strbuf_put(&o, s + copied, ms - copied);
            qai_strbuf_puts(&o, rep);
            (*cnt)++;
            i = ms + l;
            copied = i;
            email_lo = i;
            continue;
        }
        i++;
    }
    qai_strbuf_put(&o, s + copied, n - copied);
    if (!(*out = qai_strbuf_take(&o, out_len))) return qai_error(QAI_ERR_NOMEM, "pii: out of memory");
    if (counts) *counts = c;
    return QAI_OK;
}
