/* Internal layout of compiled grammars, matcher threads and vocabulary tries
 * (see include/qai/grammar.h for the contract). Shared by grammar.c (the
 * matcher and token masks), grammar_schema.c (the compilers) and
 * grammar_vocab.c (the trie).
 *
 * A compiled grammar is a graph of nodes, one per JSON value shape. Nodes
 * refer to each other by index, so recursive schemas ($ref) are cycles.
 * Matching is done by "threads": a cursor (which node, which state inside it)
 * plus the index of its parent frame, a saved cursor to return to when the
 * current value is finished. Frames live in an array that only grows while
 * a token is examined; the token-mask walk resets it on backtracking, so
 * parents are shared and a thread is copied by value in 32 bytes. Several
 * threads exist at once only where anyOf/oneOf alternatives have not been
 * told apart yet.
 */
#ifndef QAI_GRAMMAR_INTERNAL_H
#define QAI_GRAMMAR_INTERNAL_H

#include "qai/grammar.h"

#define G_INF 0x3fffffff     /* mindepth of an unsatisfiable node */
#define G_MAX_THREADS 32     /* live alternatives at once; extras are dropped (still valid, just fewer choices) */
#define G_MAX_DIGITS 20      /* digits of an integer or fraction part */
#define G_MAX_EXP_DIGITS 4   /* digits of an exponent */
#define G_NO_LIMIT UINT32_MAX
#define G_WS_SPACE 255       /* whitespace state after the one space allowed between tokens */
#define G_MAX_INDENT 200     /* largest max_ws: spaces/tabs after a newline */

/* A string pattern as a Glushkov automaton over code points: state 0 is the
 * start, states 1..n_pos are character positions of the regular expression.
 * A set of states is a 64-bit mask. */
#define G_PAT_MAX_POS 63
typedef struct {
    uint32_t lo, hi;
} grange;
typedef struct {
    uint32_t n_pos;
    bool nullable;
    uint64_t last;                      /* accepting positions */
    uint64_t universal;                 /* positions that match any character and loop (".*" of search semantics) */
    uint64_t succ[G_PAT_MAX_POS + 1];   /* succ[0] = first positions, succ[p] = follow(p) */
    uint64_t ascii[128];                /* positions whose class holds the code point */
    uint64_t lead[256];                 /* positions whose class meets the code points a UTF-8 lead byte starts */
    uint32_t range_off[G_PAT_MAX_POS + 2]; /* class of position p: ranges[range_off[p] .. range_off[p+1]) */
    uint8_t dist[G_PAT_MAX_POS + 1];    /* fewest more characters from state p to an accepting state (255: none) */
    grange *ranges;
} gpat;

/* Compiles an ECMA-262-style pattern (the simple subset of grammar.h) for a
 * string node; errors name where (what, path). */
qai_status g_compile_pattern(qai_grammar *g, const char *pattern, const char *what, const char *path, gpat **out);
/* Union of successors of the states in S whose class meets [lo, hi]. */
uint64_t g_pat_reach(const gpat *P, uint64_t S, uint32_t lo, uint32_t hi);

enum { N_ANYOF = 1, N_OBJ, N_ARR, N_STR, N_NUM, N_LIT, N_REF /* only while compiling */ };

typedef struct {
    uint8_t kind;
    uint8_t integer;   /* N_NUM: no fraction or exponent */
    uint8_t ranged;    /* N_NUM: minimum/maximum given: no exponent, value kept in [rlo, rhi] */
    uint8_t fd, idig;  /* ranged: digits of the fraction / most digits of the integer part (fd + idig <= 18) */
    int32_t mindepth;  /* fewest nested containers a value needs (G_INF: none exists) */
    /* N_ANYOF */
    uint32_t *alts;
    uint32_t n_alts;
    /* N_ARR: items; N_STR: lengths in code points */
    uint32_t items;
    uint32_t min, max; /* max G_NO_LIMIT: unbounded */
    const gpat *pat;   /* N_STR: pattern (then min = 0; max applies, in code points) */
    /* N_LIT: sorted byte strings (for keys: the escaped name followed by '"').
     * N_OBJ reuses lit/lit_len for its declared key literals in property order. */
    uint32_t n_lit;
    const uint8_t **lit;
    uint32_t *lit_len;
    int32_t *lit_tag;  /* NULL: the tag of entry i is i */
    /* N_OBJ */
    uint32_t n_props;
    uint32_t *prop_node;
    uint8_t *prop_req;
    uint32_t *req_after;  /* (n_props+1) first required index >= i, n_props if none */
    int32_t additional;   /* node of other properties, -1: none allowed */
    uint32_t all_names;   /* N_LIT of every declared name (excluded from additional keys) */
    uint32_t n_levels;    /* distinct finite mindepths of the properties */
    int32_t *levels;      /* (n_levels) ascending */
    uint32_t *keysets;    /* ((n_props+1) * (n_levels+1)) N_LIT of the keys allowed next; UINT32_MAX: none */
    int32_t select_src;   /* tool calls: the property whose literal tag ... */
    int32_t select_dst;   /* ... selects this property's schema */
    uint32_t *select_nodes;
    uint32_t n_select;
    /* N_REF while compiling */
    uint32_t ref;
    /* N_NUM ranged: bounds in units of 10^-fd, inclusive (last: the hot fields keep their offsets) */
    int64_t rlo, rhi;
} gnode;

struct qai_grammar {
    gnode *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t root;
    bool free_text;     /* tool_choice auto: text not starting with free_trigger is unconstrained */
    uint8_t free_trigger; /* '{' (or '[' for parallel tool calls) */
    uint32_t any_value, any_object; /* cached nodes, UINT32_MAX until made */
    int max_ws, max_depth;
    /* memory owned by the grammar: a list of blocks */
    void **blocks;
    size_t n_blocks, cap_blocks;
};

/* cursor kinds */
enum { K_DOC = 1, K_OBJ, K_ARR, K_STR, K_KEY, K_NUM, K_LIT };

typedef struct {
    uint32_t node;
    uint8_t k;   /* cursor kind */
    uint8_t st;  /* state within the kind */
    uint8_t ws;  /* whitespace: 0 none, G_WS_SPACE one space, 1+k a newline and k indent bytes;
                  * strings: pending UTF-8 continuation code */
    uint8_t aux; /* strings: hex digits read */
    uint32_t a, b, c, d;
} gcur;

typedef struct {
    gcur c;
    uint32_t parent; /* frame index, UINT32_MAX: none */
    uint16_t depth;  /* open containers */
    uint16_t pad;
} gthread;
_Static_assert(sizeof(gthread) == 32, "gthread is copied by value in the mask walk");

typedef struct {
    gcur c;
    uint32_t parent;
} gframe;

typedef struct {
    int n;
    gthread t[G_MAX_THREADS];
} gset;

/* A trie node. Children of a node are contiguous and sorted by byte. Tokens
 * are numbered in the sorted order of their pieces (tok_order), so the tokens
 * ending at a node are [tok_lo, tok_mid) and those of its proper descendants
 * [tok_mid, tok_hi). */
typedef struct {
    uint32_t child;
    uint32_t tok_lo, tok_mid, tok_hi;
    uint16_t n_child;
    uint8_t byte;
    uint8_t plain;      /* every path below is plain string text from a character boundary */
    uint32_t max_chars; /* most code points on a path below */
} tnode;

struct qai_grammar_vocab {
    int32_t n_vocab;
    tnode *nodes;
    uint32_t n_nodes;
    int32_t *tok_order; /* token ids in trie order */
    uint32_t n_tok;     /* tokens in the trie */
    int32_t *eog;       /* end-of-generation ids */
    uint32_t n_eog;
    uint8_t *piece;     /* concatenated pieces */
    uint32_t *piece_off; /* (n_vocab+1) */
    uint8_t *in_trie;   /* (n_vocab) */
    uint8_t *is_eog;    /* (n_vocab) */
    uint32_t max_len;   /* longest piece */
};

/* Compiler helpers shared by grammar_schema.c */
void *g_alloc(qai_grammar *g, size_t n); /* zeroed, owned by g; NULL + error on failure */
qai_status g_new_node(qai_grammar *g, uint8_t kind, uint32_t *out);
/* Computes mindepth of every node, object key sets and levels; fails if the root is unsatisfiable. */
qai_status g_finish(qai_grammar *g);
qai_status g_new_grammar(const qai_grammar_options *opt, qai_grammar **out);
/* Nodes of any JSON value / any object (created once per grammar). */
qai_status g_any_value(qai_grammar *g, uint32_t *out);
qai_status g_any_object(qai_grammar *g, uint32_t *out);

#endif
