#!/usr/bin/env bash
# qai's tokenizer trainer and encoder next to SentencePiece (Debian's
# `sentencepiece`: spm_train, spm_encode) on the same corpus and vocabulary:
# training time, encoding MB/s and compression (tokens per byte of held-out
# text, each tokenizer with its own encoder, line by line as spm_encode works).
#
# The corpus is built from WordNet (Debian's `wordnet-base`, installed when
# missing): every synset as "lemma, lemma (pos): gloss" lines, plus the raw
# data.* and index.* files — about 40 MB of dictionary text. Every 50th gloss
# line is held out for the compression measurement.
#
# usage: bench/tokenizer_vs_spm.sh [BUILD]   (default build)
# variables: VOCAB (8000), ROUNDS (2, interleaved), THREADS (2), WORK (BUILD/bench-tok)
set -eu
BUILD=${1:-build}
QAI=$BUILD/bin/qai
BENCH=$BUILD/bench/bench_tokenize_file
VOCAB=${VOCAB:-8000}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
WORK=${WORK:-$BUILD/bench-tok}
PY=/usr/bin/python3
unset OPENBLAS_CORETYPE
for t in spm_train spm_encode; do
  command -v $t >/dev/null || { echo "$t missing: apt-get install sentencepiece" >&2; exit 1; }
done
if [ ! -f /usr/share/wordnet/data.noun ]; then
  echo "installing wordnet-base for the corpus" >&2
  apt-get install -y wordnet-base >/dev/null || { echo "wordnet-base missing: apt-get install wordnet-base" >&2; exit 1; }
fi
mkdir -p "$WORK"
if [ ! -s "$WORK/corpus.txt" ]; then
  $PY - "$WORK" <<'PY'
import sys
work = sys.argv[1]
train, held = open(work + "/corpus.txt", "w", encoding="utf-8"), open(work + "/heldout.txt", "w", encoding="utf-8")
k = 0
for pos in ["noun", "verb", "adj", "adv"]:
    for line in open("/usr/share/wordnet/data." + pos, encoding="latin-1"):
        if not line[0].isdigit(): continue
        head, _, gloss = line.partition("|")
        a = head.split()
        words = [a[4 + 2 * i].replace("_", " ") for i in range(int(a[3], 16))]
        out = ", ".join(words) + " (" + pos + "): " + gloss.strip() + "\n"
        k += 1
        (held if k % 50 == 0 else train).write(out)
for kind in ["data", "index"]:
    for pos in ["noun", "verb", "adj", "adv"]:
        train.write(open("/usr/share/wordnet/%s.%s" % (kind, pos), encoding="latin-1").read())
PY
fi
C=$WORK/corpus.txt H=$WORK/heldout.txt
mb() { $PY -c "print('%.1f' % ($(stat -c %s "$1") / 1e6))"; }
echo "== machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== corpus $(mb "$C") MB, held-out $(mb "$H") MB, vocab $VOCAB, $ROUNDS interleaved rounds"
# timed CMD: runs CMD (a shell string) and prints "wall cpu" in seconds (cpu =
# user + sys of the command and its children: on a shared machine it moves far
# less with the load than wall time does)
timed() {
  local TIMEFORMAT='%R %U %S' t
  t=$( { time sh -c "$1" >/dev/null 2>&1; } 2>&1 )
  echo "$t" | awk '{printf "%.3f %.3f\n", $1, $2 + $3}'
}
spm_t=() qai_t=() qaib_t=() spm_c=() qai_c=() qaib_c=()
for r in $(seq "$ROUNDS"); do
  read -r w c <<< "$(timed "spm_train --input='$C' --model_prefix='$WORK/spm' --vocab_size=$VOCAB --model_type=bpe --byte_fallback=true --num_threads=$THREADS --minloglevel=2")"
  spm_t+=("$w") spm_c+=("$c")
  read -r w c <<< "$(timed "'$QAI' tokenizer train --vocab $VOCAB -t $THREADS '$C' -o '$WORK/qai.gguf'")"
  qai_t+=("$w") qai_c+=("$c")
  read -r w c <<< "$(timed "'$QAI' tokenizer train --vocab $VOCAB --type bytebpe -t $THREADS '$C' -o '$WORK/qai-bytebpe.gguf'")"
  qaib_t+=("$w") qaib_c+=("$c")
  echo "round $r: train (wall/cpu s) spm_train ${spm_t[-1]}/${spm_c[-1]}, qai bpe ${qai_t[-1]}/${qai_c[-1]}, qai bytebpe ${qaib_t[-1]}/${qaib_c[-1]}"
done
# encoding: the first 12 MB of the corpus (the gloss lines), line by line, one
# thread each, whole processes (model load included) for both
head -c 12000000 "$C" > "$WORK/enc.txt"
E=$WORK/enc.txt
EB=$(stat -c %s "$E")
spm_e=() qai_e=() spm_ec=() qai_ec=()
for r in $(seq "$ROUNDS"); do
  read -r w c <<< "$(timed "spm_encode --model='$WORK/spm.model' --output_format=id < '$E'")"
  spm_e+=("$w") spm_ec+=("$c")
  read -r w c <<< "$(timed "'$BENCH' '$WORK/qai.gguf' '$E' --repeat 1")"
  qai_e+=("$w") qai_ec+=("$c")
  echo "round $r: encode (wall/cpu s) spm_encode ${spm_e[-1]}/${spm_ec[-1]}, qai ${qai_e[-1]}/${qai_ec[-1]}"
done
spm_tok=$(spm_encode --model="$WORK/spm.model" --output_format=id < "$H" | wc -w)
qai_tok=$("$BENCH" "$WORK/qai.gguf" "$H" --repeat 1 | awk '{print $6}')
qaib_tok=$("$BENCH" "$WORK/qai-bytebpe.gguf" "$H" --repeat 1 | awk '{print $6}')
$PY - "$(stat -c %s "$H")" "$spm_tok" "$qai_tok" "$qaib_tok" "$EB" \
  "${spm_t[*]}" "${qai_t[*]}" "${qaib_t[*]}" "${spm_c[*]}" "${qai_c[*]}" "${qaib_c[*]}" \
  "${spm_e[*]}" "${qai_e[*]}" "${spm_ec[*]}" "${qai_ec[*]}" <<'PY'
import sys, statistics as st
hb, st_, qt, qbt, eb = (int(x) for x in sys.argv[1:6])
f = lambda s: [float(x) for x in s.split()]
spm_t, qai_t, qaib_t, spm_c, qai_c, qaib_c, spm_e, qai_e, spm_ec, qai_ec = (f(s) for s in sys.argv[6:16])
m = st.median
print("== results (median of rounds; ratio = qai / SentencePiece)")
print("%-34s %14s %12s %8s" % ("", "SentencePiece", "qai", "ratio"))
print("%-34s %14.2f %12.2f %8.3f" % ("train bpe, wall (s)", m(spm_t), m(qai_t), m(qai_t) / m(spm_t)))
print("%-34s %14.2f %12.2f %8.3f" % ("train bpe, cpu (s)", m(spm_c), m(qai_c), m(qai_c) / m(spm_c)))
print("%-34s %14s %12.2f" % ("train bytebpe, wall / cpu (s)", "-", m(qaib_t)) + " / %.2f" % m(qaib_c))
mbw = lambda t: eb / 1e6 / m(t)
print("%-34s %14.2f %12.2f %8.2f" % ("encode MB/s (wall)", mbw(spm_e), mbw(qai_e), mbw(qai_e) / mbw(spm_e)))
print("%-34s %14.2f %12.2f %8.2f" % ("encode MB/s (cpu)", mbw(spm_ec), mbw(qai_ec), mbw(qai_ec) / mbw(spm_ec)))
print("%-34s %14.5f %12.5f %8.4f" % ("held-out tokens/byte (bpe)", st_ / hb, qt / hb, qt / st_))
print("%-34s %14s %12.5f" % ("held-out tokens/byte (bytebpe)", "-", qbt / hb))
PY
