/*
 * Retrieval text normalization: the English stop-word list and step 1 of
 * Porter's stemmer (M. F. Porter, "An algorithm for suffix stripping",
 * Program 14(3), 1980): 1a plurals (sses -> ss, ies -> i, s -> ''), 1b past
 * tenses and gerunds (eed -> ee when m > 0; ed / ing removed when the stem has
 * a vowel, then at -> ate, bl -> ble, iz -> ize, undoubling, or -e after a
 * short stem), 1c y -> i after a vowel-containing stem. Steps 2-5 (derivational
 * suffixes) are deliberately left out: they conflate more aggressively than a
 * retrieval index over manuals wants, and step 1 alone catches inflection.
 */
#include <string.h>

#include "qai/index.h"

/* Common English function words (a superset of Lucene's English stop set,
 * sorted for bsearch). */
static const char *const stop[] = {
    "a",      "about",   "above", "after", "again", "against", "all",   "am",     "an",    "and",   "any",
    "are",    "as",      "at",    "be",    "because", "been",  "before", "being", "below", "between", "both",
    "but",    "by",      "can",   "could", "did",   "do",      "does",  "doing",  "down",  "during", "each",
    "few",    "for",     "from",  "further", "had", "has",     "have",  "having", "he",    "her",   "here",
    "hers",   "herself", "him",   "himself", "his", "how",     "i",     "if",     "in",    "into",  "is",
    "it",     "its",     "itself", "just", "me",    "more",    "most",  "my",     "myself", "no",   "nor",
    "not",    "now",     "of",    "off",   "on",    "once",    "only",  "or",     "other", "our",   "ours",
    "ourselves", "out",  "over",  "own",   "same",  "she",     "should", "so",    "some",  "such",  "than",
    "that",   "the",     "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this",
    "those",  "through", "to",    "too",   "under", "until",   "up",    "very",   "was",   "we",    "were",
    "what",   "when",    "where", "which", "while", "who",     "whom",  "why",    "will",  "with",  "would",
    "you",    "your",    "yours", "yourself", "yourselves",
};

bool qai_is_stopword(const char *w, size_t n) {
    size_t lo = 0, hi = sizeof stop / sizeof *stop;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *s = stop[mid];
        size_t sl = strlen(s), m = sl < n ? sl : n;
        int c = memcmp(s, w, m);
        if (c == 0) c = sl < n ? -1 : sl > n;
        if (c == 0) return true;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

/* Porter's consonant: not a vowel, and y only after a vowel (or first). */
static bool cons(const char *w, size_t i) {
    switch (w[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u': return false;
    case 'y': return i == 0 ? true : !cons(w, i - 1);
    default: return true;
    }
}

/* m: the number of VC sequences in w[0..n). */
static int measure(const char *w, size_t n) {
    int m = 0;
    size_t i = 0;
    while (i < n && cons(w, i)) i++;
    while (i < n) {
        while (i < n && !cons(w, i)) i++;
        if (i >= n) break;
        while (i < n && cons(w, i)) i++;
        m++;
    }
    return m;
}

static bool has_vowel(const char *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!cons(w, i)) return true;
    return false;
}

static bool ends(const char *w, size_t n, const char *s) {
    size_t l = strlen(s);
    return n >= l && memcmp(w + n - l, s, l) == 0;
}

static bool double_cons(const char *w, size_t n) { return n >= 2 && w[n - 1] == w[n - 2] && cons(w, n - 1); }

/* *o: ends consonant-vowel-consonant, the last not w, x or y. */
static bool cvc(const char *w, size_t n) {
    if (n < 3 || !cons(w, n - 1) || cons(w, n - 2) || !cons(w, n - 3)) return false;
    char c = w[n - 1];
    return c != 'w' && c != 'x' && c != 'y';
}

size_t qai_stem_porter1(char *w, size_t n) {
    if (n <= 2) return n;
    /* 1a */
    if (ends(w, n, "sses")) n -= 2;
    else if (ends(w, n, "ies")) n -= 2;
    else if (ends(w, n, "ss")) {
    } else if (ends(w, n, "s")) n -= 1;
    /* 1b */
    bool more = false;
    if (ends(w, n, "eed")) {
        if (measure(w, n - 3) > 0) n -= 1;
    } else if (ends(w, n, "ed") && has_vowel(w, n - 2)) {
        n -= 2;
        more = true;
    } else if (ends(w, n, "ing") && has_vowel(w, n - 3)) {
        n -= 3;
        more = true;
    }
    if (more) {
        if (ends(w, n, "at") || ends(w, n, "bl") || ends(w, n, "iz")) {
            w[n++] = 'e';
        } else if (double_cons(w, n) && w[n - 1] != 'l' && w[n - 1] != 's' && w[n - 1] != 'z') {
            n -= 1;
        } else if (measure(w, n) == 1 && cvc(w, n)) {
            w[n++] = 'e';
        }
    }
    /* 1c */
    if (n >= 2 && w[n - 1] == 'y' && has_vowel(w, n - 1)) w[n - 1] = 'i';
    return n;
}
