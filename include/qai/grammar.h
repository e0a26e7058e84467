/*
 * qai/grammar.h — structured output that cannot break: JSON, JSON Schema and
 * OpenAI-style tool calls enforced token by token while a model generates.
 *
 * Three objects:
 *   qai_grammar        a compiled grammar (any JSON value, any JSON object, a
 *                      JSON Schema, or a tool call). Immutable: share it
 *                      between threads and requests.
 *   qai_grammar_vocab  a byte trie of every token's piece, built once per
 *                      tokenizer. Immutable and shareable too.
 *   qai_grammar_state  one generation's position in the grammar (per request,
 *                      not thread-safe; one thread at a time).
 *
 * The grammar works on BYTES, the text the tokens stand for
 * (qai_tokenizer_piece with flags 0). It is an incremental pushdown matcher:
 * every prefix it accepts can still be completed into a valid document, so a
 * token is allowed exactly when its whole piece can be consumed from the
 * current state, and end-of-generation tokens are allowed only when the
 * document is complete. Control, unknown and unused tokens, and tokens whose
 * piece is empty, are never allowed (they would add nothing or loop).
 *
 * JSON (RFC 8259) with these deliberate bounds, so a model cannot loop:
 *   - whitespace between tokens is either one space or one newline followed
 *     by at most max_ws spaces/tabs of indentation (default 20), the rule of
 *     llama.cpp's JSON-schema grammars: no blank lines, no runs of spaces,
 *     no CR; the same holds before and after the document;
 *   - at most max_depth nested arrays/objects (default 32);
 *   - a number has at most 20 digits in its integer part and in its
 *     fraction, and at most 4 in its exponent;
 *   - \u escapes must form valid UTF-16: a high surrogate must be followed by
 *     a low one, lone low surrogates are rejected; raw bytes must be valid
 *     UTF-8 (no overlongs, no surrogates, at most U+10FFFF); control
 *     characters must be escaped.
 *
 * JSON Schema subset (compile errors name the keyword and its JSON pointer):
 *   type (a name or an array of names; "integer" means digits only, no
 *   fraction or exponent), properties, required, additionalProperties
 *   (false BY DEFAULT when properties are given; a schema or true allows
 *   other keys after the declared ones), items, enum, const, anyOf, oneOf
 *   (treated as anyOf: exclusivity is not enforced), allOf with exactly one
 *   member, minItems, maxItems, minLength, maxLength (in code points),
 *   pattern (simple regular expressions, below; with maxLength but not
 *   minLength), format (date, time, date-time, uuid, email, uri, ipv4; as
 *   patterns, so with maxLength but not minLength or pattern), minimum,
 *   maximum, exclusiveMinimum, exclusiveMaximum (numbers or draft-4
 *   booleans: exact, see below),
 *   $ref to "#", "#/$defs/..", "#/definitions/.." or any local JSON pointer
 *   (recursion allowed, bounded by max_depth), and boolean schemas.
 *   Annotations are ignored: title, description, default, examples, $schema,
 *   $id, $comment, deprecated, readOnly, writeOnly. Every other keyword
 *   (multipleOf, prefixItems, uniqueItems, not, ...) and every other format
 *   is an error "unsupported keyword 'K' at '#/path'". A schema without
 *   "type" takes its type from its keywords (properties → object, items →
 *   array, minLength, pattern or format → string, minimum/maximum → number);
 *   with none of them it is any value.
 *   Ranges: an integer with a range has at most 18 digits and every prefix
 *   is refused as soon as no completion of it is in range (exact, negative
 *   ranges and open ends included). A number with a range is written without
 *   an exponent, with at most 15 significant digits: max(6, the bounds'
 *   fraction digits) after the point (fewer if the bounds need more integer
 *   digits), so every value written compares with the bounds as validators
 *   compare doubles; values that need more digits are never written.
 *   Formats: date is RFC 3339 full-date (leap years exact), time is
 *   full-time (offset required, seconds 00-59, at most 3 fraction digits),
 *   date-time joins them but never writes February 29, uuid is lower-case
 *   8-4-4-4-12 hex, email is a dot-atom local part @ a domain of at least
 *   two LDH labels, at most 64 characters in all (so RFC 5321's 64 per local
 *   part and 63 per label hold), uri is an RFC 3986 URI without percent
 *   escapes, userinfo or IP literals, ipv4 is a dotted quad without leading
 *   zeros. Each is a subset of what the RFC allows, so output validates.
 *   Patterns: literals, '.', [classes] and [^...], \d \w \s (and negations),
 *   \n \t \xHH \uHHHH, escaped punctuation, (...) (?:...), |, * + ? {n}
 *   {n,} {n,m}, ^ at the start and $ at the end, at most 63 character
 *   positions after expanding repeats. Without ^/$ a pattern may match
 *   anywhere, as JSON Schema says. Lookaround, backreferences, \b and \p{..}
 *   are errors. A string with a pattern is written with minimal escapes
 *   (\" \\ \b \f \n \r \t, \u00XX only for other control characters).
 *   Output shape: declared properties appear in the schema's order; required
 *   ones always, optional ones may be skipped; then (if allowed) other keys.
 *   enum and const values are written exactly as compact JSON (no spaces,
 *   keys in the given order, numbers in their shortest round-trip form).
 *   Property names are written in that canonical form too.
 *
 * Tool calls (qai_grammar_tool_calls): the output is the JSON object
 *     {"name": "<one of the tool names>", "arguments": { ...that tool's parameters... }}
 * with "name" first, so the arguments' schema is known when they start. With
 * QAI_GRAMMAR_PARALLEL_TOOLS the output is a non-empty JSON array of such
 * objects. tool_choice:
 *   "none"      no grammar (*out is NULL): generate freely;
 *   "required"  a tool call to any of the tools;
 *   {"type":"function","function":{"name":N}}  a call to tool N;
 *   "auto"      (also when tool_choice is absent) the model chooses: if the
 *               first non-whitespace byte it writes is '{' the rest must be a
 *               complete tool call, otherwise the answer is free text, not
 *               constrained at all. No chat-template marker is needed, so it
 *               works with every template; the price is that a plain-text
 *               answer cannot start with '{'. The server tells the two apart
 *               the same way: output whose first non-space byte is '{' is a
 *               tool call (qai_grammar_state_is_tool_call).
 *
 * Performance: the token mask walks the trie with the matcher, so a shared
 * prefix is checked once, and inside a JSON string the subtrees of plain text
 * are accepted wholesale. See docs/structured-output.md for measurements.
 *
 * What it does not do: full regular expressions, multipleOf, other string
 * formats, uniqueItems, checking that additional property names are unique
 * among themselves (declared names are never repeated), or any grammar that is
 * not JSON (no GBNF).
 *
 * Usage:
 *     qai_grammar *g;
 *     if (qai_grammar_compile_json_schema(schema, strlen(schema), NULL, &g)) ... qai_last_error() ...
 *     qai_grammar_vocab *gv;  qai_grammar_vocab_new(tokenizer, &gv);   // once per tokenizer
 *     qai_grammar_state *st;  qai_grammar_state_new(g, gv, &st);       // once per request
 *     for (;;) {
 *         float *logits = ...;                       // V floats, modified in place
 *         if (qai_grammar_mask(st, logits) <= 0) break;
 *         int32_t t = qai_sampler_sample(smp, logits);
 *         if (qai_grammar_accept(st, t)) ... bug: the sampler ignored the mask ...
 *         if (qai_tokenizer_is_eog(tok, t)) break;  // only possible when complete
 *     }
 *     qai_grammar_state_free(st);  qai_grammar_vocab_free(gv);  qai_grammar_free(g);
 */
#ifndef QAI_GRAMMAR_H
#define QAI_GRAMMAR_H

#include "qai/base.h"
#include "qai/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qai_grammar qai_grammar;
typedef struct qai_grammar_vocab qai_grammar_vocab;
typedef struct qai_grammar_state qai_grammar_state;

typedef struct {
    int max_ws;    /* most spaces/tabs after a newline between tokens (0..200; default 20) */
    int max_depth; /* most nested arrays/objects (1..1000; default 32) */
} qai_grammar_options;

qai_grammar_options qai_grammar_default_options(void);

/* ---- compiling (opt may be NULL: defaults). *out is freed with qai_grammar_free. ---- */

/* Any JSON value. */
qai_status qai_grammar_json_value(const qai_grammar_options *opt, qai_grammar **out);
/* Any JSON object: response_format {"type": "json_object"}. */
qai_status qai_grammar_json_object(const qai_grammar_options *opt, qai_grammar **out);
/* A JSON Schema (len bytes of JSON text). Errors name the offending keyword
 * and its JSON pointer, e.g. "schema: unsupported keyword 'format' at
 * '#/properties/id/format'". */
qai_status qai_grammar_compile_json_schema(const char *schema, size_t len, const qai_grammar_options *opt,
                                           qai_grammar **out);
/* An OpenAI response_format object: {"type":"text"} (*out = NULL: no
 * constraint), {"type":"json_object"}, or {"type":"json_schema",
 * "json_schema":{"name":..., "schema":{...}, "strict":...}}. */
qai_status qai_grammar_from_response_format(const char *json, size_t len, const qai_grammar_options *opt,
                                            qai_grammar **out);

enum { QAI_GRAMMAR_PARALLEL_TOOLS = 1 /* a JSON array of one or more calls */ };
/* Tool calls for an OpenAI "tools" array and "tool_choice" (JSON text;
 * tool_choice may be NULL or empty: "auto"). *out is NULL for "none". Errors
 * name the tool and field ("tools[1].function.parameters: unsupported
 * keyword 'format' at '#/properties/q/format'"). */
qai_status qai_grammar_tool_calls(const char *tools, size_t tools_len, const char *tool_choice, size_t choice_len,
                                  int flags, const qai_grammar_options *opt, qai_grammar **out);
void qai_grammar_free(qai_grammar *g);

/* ---- the vocabulary trie ---- */

/* Builds the trie of tok's token pieces (tok is not kept). Thread-safe to use
 * from any number of states at once. */
qai_status qai_grammar_vocab_new(const qai_tokenizer *tok, qai_grammar_vocab **out);
void qai_grammar_vocab_free(qai_grammar_vocab *v);
int32_t qai_grammar_vocab_n_vocab(const qai_grammar_vocab *v);

/* ---- matching ---- */

/* A state at the start of the document. g must outlive it; v may be NULL for
 * byte-level use only (qai_grammar_accept_bytes). */
qai_status qai_grammar_state_new(const qai_grammar *g, const qai_grammar_vocab *v, qai_grammar_state **out);
void qai_grammar_state_free(qai_grammar_state *s);
void qai_grammar_state_reset(qai_grammar_state *s);

/* Sets logits[t] = -INFINITY for every token t the grammar forbids now
 * (logits has n_vocab entries). Returns how many tokens remain allowed (0
 * only after an end-of-generation token was accepted, or for a vocabulary
 * that cannot spell what the grammar needs, e.g. one without byte tokens).
 * Does not allocate once the state has warmed up. */
int qai_grammar_mask(qai_grammar_state *s, float *logits);
/* Same decision as a byte array: sets allowed[t] = 0 for every forbidden
 * token and leaves the others as they are (so masks can be combined).
 * Returns the number of tokens this grammar allows. */
int qai_grammar_allowed(qai_grammar_state *s, uint8_t *allowed);
/* Advances by one token. Fails (state unchanged) with QAI_ERR_ARG if the
 * token is not allowed, naming the token and the byte that broke it. An
 * end-of-generation token is accepted only when the document is complete;
 * afterwards nothing more is allowed. */
qai_status qai_grammar_accept(qai_grammar_state *s, int32_t token);
/* Advances by n bytes (for text that did not come from tokens, and for
 * tests). Fails (state unchanged) naming the byte offset that cannot follow. */
qai_status qai_grammar_accept_bytes(qai_grammar_state *s, const char *bytes, size_t n);
/* Brings the state to "these tokens were generated": accepts the tokens
 * past the ones it has seen, or resets and replays when n is smaller. */
qai_status qai_grammar_state_sync(qai_grammar_state *s, const int32_t *tokens, int n);
/* The bytes so far form a complete document (end of generation allowed). */
bool qai_grammar_is_complete(const qai_grammar_state *s);
/* Tool choice "auto": the output has committed to a tool call (its first
 * non-whitespace byte was '{'). Always true for other grammars once a byte
 * of the value was written. */
bool qai_grammar_state_is_tool_call(const qai_grammar_state *s);

/* Whether output text (all of it so far, n bytes) is outside the grammar's
 * constraint: 1 for free text under tool_choice "auto" (its first
 * non-whitespace byte is not the one that starts a call), -1 while that is
 * not decided yet (nothing but whitespace so far), 0 when the grammar
 * constrains it (every other grammar, and a call under "auto"). The server
 * applies stop strings only to free text, so a stop string can never cut a
 * JSON document. Reads only the grammar of s (not the state). */
int qai_grammar_free_text(const qai_grammar_state *s, const char *text, size_t n);

/* The scheduler's mask hook (src/serve/scheduler.h, qai_token_mask_fn): user
 * is a qai_grammar_state; syncs it to the generated tokens and clears the
 * forbidden entries of allowed. If the tokens cannot be replayed (the sampler
 * ignored an earlier mask) only end-of-generation tokens stay allowed. */
void qai_grammar_mask_hook(void *user, const int32_t *generated, int n_generated, uint8_t *allowed, int n_vocab);

#ifdef __cplusplus
}
#endif
#endif
