#!/usr/bin/python3
"""Reference WordPiece tokenization for tests/tokenizer/test_wordpiece.c.

An independent implementation of Hugging Face's BertTokenizer (the Python
"slow" tokenizer, do_lower_case=True, tokenize_chinese_chars=True,
strip_accents=None) written from its documented algorithm with Python's
unicodedata (Debian bookworm has no python3-transformers):

  basic:  drop U+0000, U+FFFD and Cc/Cf characters (tab, newline, CR are
          whitespace); map space/\\t/\\n/\\r/Zs to a space; put spaces around
          CJK ideographs; split on whitespace (str.split: also U+2028/U+2029);
          each piece: str.lower(), NFD, drop Mn; split off punctuation
          (category P*, or ASCII 33-47, 58-64, 91-96, 123-126).
  wordpiece: words longer than 100 characters are [UNK]; else greedy
          longest-match-first with "##" continuations; no cover -> [UNK].

It writes:
  tests/data/bert_vocab.txt      a synthetic vocabulary in vocab.txt form
  tests/data/bert_wordpiece.tsv  one case per line: UTF-8 text as hex, a tab,
                                 the ids (no [CLS]/[SEP]) space-separated

Run from the repository root:  /usr/bin/python3 tests/tools/wordpiece_ref.py
"""
import os
import random
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")

# ---------------------------------------------------------------- the reference


def is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_chinese(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text, lower=True):
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        out.append(" " if is_whitespace(ch) else ch)
    text = "".join(out)
    out = []
    for ch in text:
        if is_chinese(ord(ch)):
            out += [" ", ch, " "]
        else:
            out.append(ch)
    text = "".join(out)
    words = []
    for tok in text.strip().split():
        if lower:
            tok = tok.lower()
            tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for ch in tok:
            if is_punctuation(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
    return words


def wordpiece(word, vocab, unk="[UNK]", max_chars=100):
    if len(word) > max_chars:
        return [vocab[unk]]
    out, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = vocab[sub]
                break
            end -= 1
        if cur is None:
            return [vocab[unk]]
        out.append(cur)
        start = end
    return out


def encode(text, vocab):
    ids = []
    for w in basic_tokenize(text):
        ids += wordpiece(w, vocab)
    return ids


# ---------------------------------------------------------------- the vocabulary

WORDS = """the a an and of to in is it that for on with as was he she they we you i be by at this
from or have not are but had his her all one can there were which when your what their
said if do will each about how up out them then many some so these would other into has
more two like him see time could no make than first been its who now people my made over
did down only way find use may water long little very after words called just where most know
quick brown fox jump lazy dog hello world token model embed bert sentence vector search index
cafe naive resume elan uber strasse facade deja vu fiance cooperate role creme brulee
un play run walk talk read write token new york city state unit united nation
don won can isn aren couldn shouldn wouldn
qai llama gguf file text data code test case tokenize tokenizer encoder decoder
hello hel lo wor ld emb ed ding dings izer ization ize able aff ment ness less ful
""".split()

SUFFIXES = """s es ed ing ly er est ment ness less ful able ible ion ation ization izer ize
ity al ial ic ical ous ive en d t re ve ll m aff affa ffa ble ding dings bed eds
a e i o u y n r l st th ch sh ng nd nt""".split()


def build_vocab():
    v = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused2]"]
    chars = []
    chars += [chr(c) for c in range(33, 127) if not ("A" <= chr(c) <= "Z")]  # ASCII, lowercase only
    chars += list("ßæøđłþðıœ")                                               # letters that do not decompose
    chars += list("αβγδεζηθικλμνξοπρσςτυφχψω")                                # Greek, both sigmas
    chars += list("абвгдежзийклмнопрстуфхцчшщъыьэюяё")                       # Cyrillic (ё and й decompose)
    chars += list("你好世界中国人日本大学生")                                  # CJK ideographs
    chars += list("のはをにがですかアイウ")                                    # kana (not split)
    chars += [chr(c) for c in range(0x1100, 0x1113)]                            # Hangul leading jamo
    chars += [chr(c) for c in range(0x1161, 0x1176)]                            # vowels
    chars += [chr(c) for c in range(0x11A8, 0x11C3)]                            # trailing
    chars += list("—–“”‘’¿¡…。、「」《》·•€£¥©®°±×÷§¶")                       # punctuation and symbols
    chars += ["🚀", "😀", "😶", "🌫", "✅", "❤", "👍", "\ue000", "ℝ", "ℕ"]     # symbols, private use
    for c in chars:
        if c not in v:
            v.append(c)
    for c in chars:
        if "##" + c not in v:
            v.append("##" + c)
    for w in WORDS:
        if w not in v:
            v.append(w)
    for s in SUFFIXES:
        if "##" + s not in v:
            v.append("##" + s)
    v += ["😶🌫", "##😶🌫", "你好", "한", "σας", "να", "##ς"]
    seen, out = set(), []
    for t in v:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


# ---------------------------------------------------------------- test strings

HAND = [
    "", " ", "hello", "Hello, World!", "HELLO world", "unaffable", "unaffably", "don't stop",
    "The quick brown fox jumps over the lazy dog.", "  leading and trailing  ", "tabs\tand\nnewlines\r\nhere",
    "café naïve résumé Élan Über façade déjà vu", "cafe\u0301 nai\u0308ve",  # precomposed and combining
    "Straße", "ÆØÅ æøå", "ﬁnance", "Ⅻ ⅻ", "①②③",
    "你好世界", "你好，世界！", "中国人abc日本", "大学生の日本語", "ひらがなのテスト", "カタカナ",
    "한국어", "한", "안녕하세요",
    "ΟΔΟΣ", "ΣΑΣ.", "Σ", "ΑΣ'Β", "όλα καλά", "Ελληνικά",
    "Привет, мир! Ёлка йод", "İstanbul ıi", "ǅemal ǈ",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
    "👍🏽 ❤️ 🇩🇪", "a\u200bb", "a\u200db", "\ufeffbom", "soft\u00adhyphen",
    "nul\x00byte", "ctrl\x01\x02\x1fchars", "del\x7fchar", "a\x0bb\x0cc", "next\x85line", "nbsp\u00a0here",
    "em\u2003space\u3000ideo", "line\u2028sep\u2029para", "private\ue000use", "\ufffdreplacement",
    "x" * 99, "x" * 100, "x" * 101, "y" * 150, "the" + "e" * 98, "a " * 50,
    "$100.00 + 5% = ~$105", "<html>&amp;</html>", "e-mail: someone@example.com", "#hashtag @user",
    "C++ / C# / F#", "...!!!???", "«quoted» „low“", "¿Qué? ¡Sí!", "‘single’ “double”", "a—b–c",
    "3.14159 2,718 1e-5", "[CLS] [SEP] [MASK] [UNK]", "[unused0]", "##ing", "▁word ▁", "hello▁world",
    "ℝ ℕ", "qai gguf tokenizer", "tokenization tokenizer tokenizers", "embedding embeddings embedded",
]

POOLS = [
    list("abcdefghijklmnopqrstuvwxyz"), list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), list("0123456789"),
    list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), list(" \t\n\r\x0b\x0c\x85\u00a0\u2003\u3000\u2028"),
    ["\x00", "\x01", "\x1f", "\x7f", "\u200b", "\u200d", "\ufeff", "\u00ad", "\ufffd"],
    list("àáâãäåèéêëìíîïòóôõöùúûüýÿñçÀÉÎÕÜÑÇ"), ["\u0301", "\u0308", "\u0327", "\u030a"],
    list("你好世界中国人日本大学生龍"), list("한국어안녕"), list("αβγΣΑΩσςπ"), list("абвгдЁЙжЩ"),
    list("—–“”‘’¿¡…。、「」·•€£©°×"), ["🚀", "😀", "😶", "🌫", "✅", "❤", "👍", "\ufe0f", "\ue000"],
]


def gen_cases(vocab_words):
    rng = random.Random(20261122)
    cases = list(HAND)
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(1, 8)):
            r = rng.random()
            if r < 0.4:
                w = rng.choice(vocab_words)
                if rng.random() < 0.3:
                    w = w.capitalize() if rng.random() < 0.5 else w.upper()
                parts.append(w)
            elif r < 0.5:
                parts.append(rng.choice(POOLS[4]))
            else:
                pool = rng.choice(POOLS)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
            if rng.random() < 0.6:
                parts.append(" ")
        cases.append("".join(parts))
    return cases


def main():
    vocab = build_vocab()
    with open(os.path.join(DATA, "bert_vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        for t in vocab:
            f.write(t + "\n")
    index = {t: i for i, t in enumerate(vocab)}
    words = [t for t in vocab if not t.startswith("##") and not t.startswith("[") and len(t) > 1]
    cases = gen_cases(words)
    n_unk = 0
    with open(os.path.join(DATA, "bert_wordpiece.tsv"), "w", encoding="ascii", newline="\n") as f:
        for c in cases:
            ids = encode(c, index)
            n_unk += ids.count(index["[UNK]"])
            f.write(c.encode("utf-8").hex() + "\t" + " ".join(map(str, ids)) + "\n")
    print(f"{len(vocab)} tokens, {len(cases)} cases, {n_unk} [UNK] ids")


if __name__ == "__main__":
    main()
