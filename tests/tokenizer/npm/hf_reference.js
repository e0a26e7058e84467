// The reference side of tests/tokenizer/test_hf_tokenizers.c: Hugging Face's
// tokenizer (the @lenml/tokenizers port of transformers.js) over a list of
// strings, with the tokenizer.json of one @lenml/tokenizer-* package.
//
// usage: node hf_reference.js PACKAGE STRINGS.json
//   PACKAGE       tokenizer-llama3, tokenizer-qwen1_5 or tokenizer-qwen2_5
//   STRINGS.json  a JSON array of strings
// Prints one JSON line per string: {"ids": [...], "text": <ids decoded>}, the
// ids as encode(text, {add_special_tokens: false}) gives them (added tokens
// such as "<|im_start|>" in the text are still matched, as in HF). Exits 1 if
// a string is not in Unicode NFC: Qwen's normalizer is NFC, which llama.cpp
// (and qai) do not apply, so such strings would test the normalizer instead.
"use strict";
const fs = require("fs");
const path = require("path");

const [pkg, file] = process.argv.slice(2);
if (!pkg || !file) {
  console.error("usage: node hf_reference.js PACKAGE STRINGS.json");
  process.exit(2);
}
try {
  const { fromPreTrained } = require(path.join(__dirname, "node_modules", "@lenml", pkg));
  const tok = fromPreTrained();
  const strings = JSON.parse(fs.readFileSync(file, "utf8"));
  const out = [];
  for (const [i, s] of strings.entries()) {
    if (s.normalize("NFC") !== s) throw new Error(`string ${i} ${JSON.stringify(s)} is not in NFC`);
    const ids = tok.encode(s, { add_special_tokens: false });
    const text = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
    out.push(JSON.stringify({ ids, text }));
  }
  process.stdout.write(out.join("\n") + "\n");
} catch (e) {
  // the message only: an uncaught error would print a line of the minified bundle
  console.error(`hf_reference: ${pkg}: ${e && e.message ? e.message : e}`);
  process.exit(1);
}
