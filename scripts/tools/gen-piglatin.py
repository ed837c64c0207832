#!/usr/bin/env python3
"""Writes a parallel-text corpus (word <TAB> its Pig Latin) from Debian's word list.

A real, learnable, character-level transduction with known rules, standing in for a translation
corpus (none can be downloaded here). The model must copy letters, move the leading consonant
cluster past the rest of the word (reordering: attention has to look back to the start) and add
the right suffix. Rules, applied to lower-case ASCII words of the list (wamerican:
/usr/share/dict/american-english; proper nouns and possessives are left out):

  1. A word that starts with a vowel (a e i o u) gets "way":       apple  -> appleway
  2. Otherwise its leading consonants up to the first vowel move to the end, then "ay":
                                                                 string -> ingstray
     "qu" after the leading consonants moves with them:          square -> aresquay
     "y" counts as a vowel except as the first letter:           rhythm -> ythmrhay, yellow -> ellowyay
  3. A word with no vowel at all (by rule 2's count) just gets "ay": hmm -> hmmay

Held-out split: a word is a test word when a hash of it falls in the test fraction, so train and
test never share a word (the test set measures generalisation to unseen words).

  scripts/tools/gen-piglatin.py --out /tmp/tandem-nmt            # train.tsv, test.tsv
  scripts/tools/gen-piglatin.py --out DIR --max-length 10 --test-fraction 0.05
  scripts/tools/gen-piglatin.py --out DIR --sample 8000 --seed 1    # a random subset (tests)
"""
import argparse
import hashlib
import os
import random
import sys

VOWELS = set("aeiou")


def pig_latin(word):
    if word[0] in VOWELS:
        return word + "way"
    i = 0
    while i < len(word):
        c = word[i]
        if c in VOWELS or (c == "y" and i > 0):
            break
        i += 1
    if i < len(word) and word[i] == "u" and i > 0 and word[i - 1] == "q":
        i += 1  # "qu" stays together
    if i >= len(word):
        return word + "ay"
    return word[i:] + word[:i] + "ay"


def is_test(word, fraction):
    h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
    return h / 2.0**64 < fraction


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--words", default="/usr/share/dict/american-english")
    ap.add_argument("--out", required=True, help="folder for train.tsv and test.tsv")
    ap.add_argument("--min-length", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=12, help="longest source word kept")
    ap.add_argument("--test-fraction", type=float, default=0.05)
    ap.add_argument("--sample", type=int, default=0,
                    help="keep a random N of the words (0: all), in the list's order")
    ap.add_argument("--seed", type=int, default=1, help="seed of --sample")
    a = ap.parse_args()
    if not os.path.exists(a.words):
        sys.exit(f"gen-piglatin: {a.words} not found: install Debian's wamerican "
                 "(scripts/install-deps.sh)")
    words = []
    seen = set()
    with open(a.words, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.strip()
            if not (a.min_length <= len(w) <= a.max_length) or not w.isascii():
                continue
            if not w.isalpha() or not w.islower() or w in seen:
                continue
            seen.add(w)
            words.append(w)
    if 0 < a.sample < len(words):
        keep = set(random.Random(a.seed).sample(range(len(words)), a.sample))
        words = [w for i, w in enumerate(words) if i in keep]
    os.makedirs(a.out, exist_ok=True)
    counts = {"train": 0, "test": 0}
    with open(os.path.join(a.out, "train.tsv"), "w") as tr, open(os.path.join(a.out, "test.tsv"), "w") as te:
        for w in words:
            split = "test" if is_test(w, a.test_fraction) else "train"
            (te if split == "test" else tr).write(f"{w}\t{pig_latin(w)}\n")
            counts[split] += 1
    print(f"gen-piglatin: {counts['train']} train and {counts['test']} test pairs in {a.out}")


if __name__ == "__main__":
    main()
