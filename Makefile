# mm: make builds lib/libmm.a and the tools; make test builds and runs every test.
# Every lib/*.c goes into libmm.a, every cmd/mm-*.c is a tool (linked with the other cmd/*.c
# helpers), every tests/test_*.c is a test program. Adding a file needs no edit here.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
OPT ?= -O2
PKGS = openblas libpng libzstd jansson libjpeg zlib
# Recursively expanded on purpose: pkg-config runs after the deps step has installed packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
# -fno-math-errno: nothing in mm reads errno after a math call, and without it sqrtf is a call
# that keeps loops such as AdamW's from vectorising (the results are the same: sqrt is exact).
# `make test SANITIZE=1`: everything built with AddressSanitizer (leaks included) and
# UndefinedBehaviorSanitizer, any report failing the test that made it (tests/sanitize.supp
# lists the leaks of Open MPI's own, which are not ours). Objects are rebuilt whenever the
# build flags change (.build-flags), so the plain and the sanitized builds never mix.
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
CFLAGS_ALL = $(OPT) -g -std=gnu11 -Wall -Wextra -fno-math-errno -ffp-contract=off -fopenmp -Ilib $(PKG_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
LDLIBS_ALL = -Wl,--as-needed -fopenmp $(PKG_LIBS) -lpthread -lm $(SAN_FLAGS) $(LDLIBS)
FLAGS_NOW = $(CC) $(OPT) $(SAN_FLAGS) $(CFLAGS) $(LDLIBS)

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:.c=.o)
TOOL_SRC := $(wildcard cmd/mm-*.c)
TOOLS := $(TOOL_SRC:.c=)
CLI_SRC := $(filter-out $(TOOL_SRC),$(wildcard cmd/*.c))
CLI_OBJ := $(CLI_SRC:.c=.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BINS := $(patsubst tests/%.c,tests/bin/%,$(TEST_SRC))
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,tests/bench/bin/%,$(BENCH_SRC))
HEADERS := $(wildcard lib/*.h cmd/*.h tests/*.h tests/bench/*.h) .build-flags
DEPS_OK := .ci/.deps-build-ok

# Data-parallel training: `make MPI=1` also builds cmd/mm-train-mpi, mm-train over Open MPI
# (run it with mpirun). Its cmd/ objects are compiled with -DMM_MPI into cmd/mpi/, so the plain
# tools never hold MPI code and the two builds never mix objects. `make test` always builds it:
# the 2-rank test needs it.
MPI ?= 0
MPI_TOOL := cmd/mm-train-mpi
MPI_OBJ := $(patsubst cmd/%.c,cmd/mpi/%.o,$(CLI_SRC) cmd/mm-train.c)
MPI_CFLAGS = $(shell pkg-config --cflags ompi-c)
MPI_LIBS = $(shell pkg-config --libs ompi-c)
DEPS_MPI_OK := .ci/.deps-mpi-ok

.PHONY: all deps test demo install uninstall clean ref bench experiment-fashion fashion-eval sweep-fashion experiment-twemoji twemoji-eval completion fuzz plot
# The version: lib/mm.h's MM_VERSION, the one place it is written.
MM_VERSION := $(shell sed -n 's/^\#define MM_VERSION "\(.*\)"/\1/p' lib/mm.h)
# Objects made on the way to a tool are kept (make would delete them as intermediate files).
.SECONDARY:
all: lib/libmm.a $(TOOLS)
ifeq ($(MPI),1)
all: $(MPI_TOOL)
endif

# The stamp is refreshed only when the script changes; the script itself is quick when
# nothing is missing.
$(DEPS_OK): .ci/deps
	@sh .ci/deps build
	@touch $@
deps: $(DEPS_OK)

# Rewritten (and so newer than every object) only when the flags differ from the last build's.
.build-flags: FORCE
	@printf '%s\n' '$(FLAGS_NOW)' | cmp -s - $@ || printf '%s\n' '$(FLAGS_NOW)' > $@
.PHONY: FORCE

lib/%.o: lib/%.c $(HEADERS) | $(DEPS_OK)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<
cmd/%.o: cmd/%.c $(HEADERS) | $(DEPS_OK)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(DEPS_MPI_OK): .ci/deps
	@sh .ci/deps mpi
	@touch $@
cmd/mpi/%.o: cmd/%.c $(HEADERS) | $(DEPS_OK) $(DEPS_MPI_OK)
	@mkdir -p cmd/mpi
	$(CC) $(CFLAGS_ALL) -DMM_MPI $(MPI_CFLAGS) -c -o $@ $<
$(MPI_TOOL): $(MPI_OBJ) lib/libmm.a
	$(CC) $(CFLAGS_ALL) -o $@ $(MPI_OBJ) lib/libmm.a $(LDLIBS_ALL) $(MPI_LIBS)

lib/libmm.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

# The CLI helpers go through an archive, so that a tool links only the ones it uses:
# mm-tokenize then holds no trainer, no model and no OpenBLAS, whose idle threads would take
# cycles from its own on a small machine.
cmd/libcli.a: $(CLI_OBJ)
	rm -f $@
	ar rcs $@ $^

cmd/mm-%: cmd/mm-%.o cmd/libcli.a lib/libmm.a
	$(CC) $(CFLAGS_ALL) -o $@ $< cmd/libcli.a lib/libmm.a $(LDLIBS_ALL)

# Bash completion of every tool, made from its option table (cmd/completion.sh).
COMPLETION_DIR := share/bash-completion/completions
COMPLETIONS := $(patsubst cmd/%,$(COMPLETION_DIR)/%,$(TOOLS) $(if $(filter 1,$(MPI)),$(MPI_TOOL)))
completion: $(COMPLETIONS)
$(COMPLETION_DIR)/%: cmd/% cmd/completion.sh
	@mkdir -p $(@D)
	sh cmd/completion.sh $< >$@.tmp && mv $@.tmp $@

tests/bin/%: tests/%.c $(HEADERS) lib/libmm.a | $(DEPS_OK)
	@mkdir -p tests/bin
	$(CC) $(CFLAGS_ALL) -o $@ $< lib/libmm.a $(LDLIBS_ALL)
# The fuzz corpora's replay includes every fuzz target (the CLI's includes cmd/cli.c and
# cmd/opts.c).
tests/bin/test_fuzz: $(wildcard tests/fuzz/*.c tests/fuzz/*.h) cmd/cli.c cmd/opts.c

# tests/cli/faults.sh preloads it: it fails the Nth write, fsync or rename of a process.
tests/bin/fault_shim.so: tests/fault_shim.c
	@mkdir -p tests/bin
	$(CC) -shared -fPIC -O2 -Wall -Wextra -o $@ $< -ldl
ifeq ($(SANITIZE),1)
tests/bin/sanitize_keep.so: tests/sanitize_keep.c
	@mkdir -p tests/bin
	$(CC) -shared -fPIC -o $@ $<
test: all $(TEST_BINS) $(MPI_TOOL) tests/bin/fault_shim.so tests/bin/sanitize_keep.so
	@ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize.supp \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 MM_SAN_FLAGS='$(SAN_FLAGS)' \
		MM_SAN_PRELOAD=$(CURDIR)/tests/bin/sanitize_keep.so sh tests/run.sh
else
test: all $(TEST_BINS) $(MPI_TOOL) tests/bin/fault_shim.so
	@sh tests/run.sh
endif

tests/bench/bin/%: tests/bench/%.c $(HEADERS) lib/libmm.a | $(DEPS_OK)
	@mkdir -p tests/bench/bin
	$(CC) $(CFLAGS_ALL) -o $@ $< lib/libmm.a $(LDLIBS_ALL)

# Speed and memory against the peers of issue 6 (PyTorch, OpenBLAS sgemm, a decode-only loop):
# one table on stdout and in tests/bench/results.md. BENCH_RUNS sets the runs per figure (5).
bench: all $(BENCH_BINS)
	@sh .ci/deps ref
	@bash tests/bench/run.sh

# The losses of a run as a PNG (RUN/loss.png) and on the terminal: make plot RUN=out/demo/run.
plot:
	@[ -n "$(RUN)" ] || { echo "make plot RUN=DIR: which run?" >&2; exit 2; }
	@.ci/deps plot
	sh cmd/plot.sh $(RUN)

# The whole pipeline on the embedded data: tokenize, train a few minutes, sample, evaluate.
DEMO ?= out/demo
DEMO_STEPS ?= 1500
FM = data/fashion-mnist
demo: all
	@sh .ci/deps plot
	@mkdir -p $(DEMO)
	@date +%s > $(DEMO)/start-time
	@echo "== tokenize: 2,000 Fashion-MNIST images with captions, a BPE tokenizer learned from them"
	cmd/mm-tokenize --format idx $(FM)/train-images-idx3-ubyte.gz $(FM)/train-labels-idx1-ubyte.gz \
		--labels $(FM)/labels.txt --caption-template 'a photo of a {label}' \
		--train-tokenizer $(DEMO)/tok.bin --vocab-size 300 -o $(DEMO)/train
	cmd/mm-tokenize --format idx $(FM)/t10k-images-idx3-ubyte.gz $(FM)/t10k-labels-idx1-ubyte.gz \
		--labels $(FM)/labels.txt --caption-template 'a photo of a {label}' \
		--tokenizer $(DEMO)/tok.bin -o $(DEMO)/test
	@echo "== train: $(DEMO_STEPS) steps"
	rm -rf $(DEMO)/run
	cmd/mm-train --data $(DEMO)/train-00000.mms --val $(DEMO)/test-00000.mms --tokenizer $(DEMO)/tok.bin \
		--dim 128 --layers 4 --heads 4 --seq-len 72 --batch 16 --lr 2e-3 --warmup 50 \
		--steps $(DEMO_STEPS) --image-first 0.5 --ema 0.99 --log-every 25 --eval-every 500 --eval-batches 8 --out $(DEMO)/run
	@echo "== sample: 8 images for each of 4 captions (EMA weights, 25 Heun steps, guidance 2), then their captions"
	rm -rf $(DEMO)/samples
	cmd/mm-sample --model $(DEMO)/run --ema --prompt 'a photo of a trouser' --image -o $(DEMO)/samples/trouser \
		-n 8 --steps 25 --max-tokens 0 --grid $(DEMO)/grid-trouser.png >/dev/null
	cmd/mm-sample --model $(DEMO)/run --ema --prompt 'a photo of a sneaker' --image -o $(DEMO)/samples/sneaker \
		-n 8 --steps 25 --max-tokens 0 --grid $(DEMO)/grid-sneaker.png >/dev/null
	cmd/mm-sample --model $(DEMO)/run --ema --prompt 'a photo of a bag' --image -o $(DEMO)/samples/bag \
		-n 8 --steps 25 --max-tokens 0 --grid $(DEMO)/grid-bag.png >/dev/null
	cmd/mm-sample --model $(DEMO)/run --ema --prompt 'a photo of a dress' --image -o $(DEMO)/samples/dress \
		-n 8 --steps 25 --max-tokens 0 --grid $(DEMO)/grid-dress.png >/dev/null
	cmd/mm-sample --model $(DEMO)/run --ema --max-tokens 20 --caption $(DEMO)/samples/*/000.png > $(DEMO)/captions.tsv && \
		cat $(DEMO)/captions.tsv
	@echo "== evaluate on 300 held-out images: losses, bits per dimension, captioning accuracy"
	sed 's/^/a photo of a /' $(FM)/labels.txt > $(DEMO)/classes.txt
	cmd/mm-eval --model $(DEMO)/run --ema --data $(DEMO)/test-00000.mms --max-docs 300 --bpd --bpd-samples 2 \
		--classes $(DEMO)/classes.txt --json-file $(DEMO)/eval.json > $(DEMO)/figures.txt && \
		cat $(DEMO)/figures.txt
	@echo "== the loss plot and one page: $(DEMO)/index.html"
	sh cmd/plot.sh $(DEMO)/run $(DEMO)/loss.png
	sh cmd/demo_page.sh $(DEMO) $$(( $$(date +%s) - $$(cat $(DEMO)/start-time) ))
	@echo
	@echo "tokenizer:   $(DEMO)/tok.bin"
	@echo "shards:      $(DEMO)/train-00000.mms $(DEMO)/test-00000.mms"
	@echo "checkpoint:  $(DEMO)/run/$$(cat $(DEMO)/run/latest)"
	@echo "log:         $(DEMO)/run/log.jsonl"
	@echo "images:      $(DEMO)/samples/*/NNN.png, grids $(DEMO)/grid-*.png"
	@echo "evaluation:  $(DEMO)/eval.json"

# The Fashion-MNIST experiment: the whole Fashion-MNIST (Debian dataset-fashion-mnist: 60,000
# training and 10,000 test images), captions from the class names, one training run, then every
# figure of mm-eval on the test set, a grid of generated samples per class and the independent
# judge's figures on them, all in $(EXP); EXP_SAVE=1 copies the figures, times and grids to
# data/results/fashion-mnist/. The EXP_* variables set the recipe; the defaults are the recipe
# whose figures README.md quotes (14,000 steps: under an hour of training on 2 cores). Then
# `make sweep-fashion` samples the same model at several guidance scales, intervals, samplers
# and step counts, judged on the validation images (data/fashion-sweep.sh), and plots them.
# A quick end-to-end check: make experiment-fashion EXP_STEPS=5 EXP_DIM=32 EXP_LAYERS=1 EXP_HEADS=4
#   EXP_EVAL_DOCS=100 EXP_PER_CLASS=2 EXP_SAMPLE_STEPS=4 EXP_BPD_SAMPLES=1
EXP ?= out/fashion
EXP_SRC ?= /usr/share/datasets/fashion-mnist
EXP_PATCH ?= 7
EXP_VOCAB ?= 300
EXP_DIM ?= 192
EXP_LAYERS ?= 6
EXP_HEADS ?= 6
# rows of 29: the longest document (BOS, 18 image positions, a 9-token caption, EOS) fits, and
# a row holds one document either way; rows of 32 padded 17% of every step, rows of 29 pad 8%
EXP_SEQ ?= 29
EXP_BATCH ?= 64
EXP_STEPS ?= 14000
EXP_LR ?= 1e-3
EXP_WARMUP ?= 200
EXP_EMA ?= 0.999
# images before their caption in 70% of the pairs, at t' in [0.75, 1] (mm-train's defaults: 20%,
# [0.5, 1]), and the image loss weighed 3 (mm-train's default: 5): captioning 90.74% against
# 90.06% with 50% and 5, and 89.11% with 50%, [0.5, 1] and 5, in the hour (README)
EXP_IMAGE_FIRST ?= 0.7
EXP_IMAGE_FIRST_T ?= 0.75
EXP_IMAGE_WEIGHT ?= 3
EXP_THREADS ?= 2
EXP_TRAIN_ARGS ?=
EXP_EVAL_DOCS ?= 0
EXP_BPD_SAMPLES ?= 4
EXP_PER_CLASS ?= 100
EXP_SAMPLER ?= dpm2m
EXP_SAMPLE_STEPS ?= 20
EXP_CFG ?= 2
EXP_READ_T ?= 0.9
EXP_EVAL_ARGS ?=
EXP_SAVE ?= 0
experiment-fashion: all
	@sh .ci/deps data
	@mkdir -p $(EXP)
	sed 's/^/a photo of a /' $(FM)/labels.txt > $(EXP)/classes.txt
	@echo "== tokenize: 60,000 training and 10,000 test images, a BPE tokenizer learned from the captions"
	cmd/mm-tokenize --format idx $(EXP_SRC)/train-images-idx3-ubyte.gz $(EXP_SRC)/train-labels-idx1-ubyte.gz \
		--labels $(FM)/labels.txt --caption-template 'a photo of a {label}' --patch $(EXP_PATCH) \
		--train-tokenizer $(EXP)/tok.bin --vocab-size $(EXP_VOCAB) --threads $(EXP_THREADS) -o $(EXP)/train
	cmd/mm-tokenize --format idx $(EXP_SRC)/t10k-images-idx3-ubyte.gz $(EXP_SRC)/t10k-labels-idx1-ubyte.gz \
		--labels $(FM)/labels.txt --caption-template 'a photo of a {label}' --patch $(EXP_PATCH) \
		--tokenizer $(EXP)/tok.bin --threads $(EXP_THREADS) -o $(EXP)/test
	@echo "== train: $(EXP_STEPS) steps"
	rm -rf $(EXP)/run
	start=$$(date +%s); \
	cmd/mm-train --data '$(EXP)/train-*.mms' --tokenizer $(EXP)/tok.bin --dim $(EXP_DIM) --layers $(EXP_LAYERS) \
		--heads $(EXP_HEADS) --seq-len $(EXP_SEQ) --batch $(EXP_BATCH) --steps $(EXP_STEPS) --lr $(EXP_LR) \
		--warmup $(EXP_WARMUP) --ema $(EXP_EMA) --threads $(EXP_THREADS) --log-every 50 \
		--image-first $(EXP_IMAGE_FIRST) --image-first-t $(EXP_IMAGE_FIRST_T) --image-weight $(EXP_IMAGE_WEIGHT) \
		--ckpt-every 1000 $(EXP_TRAIN_ARGS) \
		--out $(EXP)/run && \
	echo "training: $$(( $$(date +%s) - start )) s" > $(EXP)/times.txt
	$(MAKE) --no-print-directory fashion-eval

# The evaluation of make experiment-fashion alone, on the model and data already in $(EXP).
fashion-eval: all
	@[ -f $(EXP)/run/latest ] || { echo "fashion-eval: no model in $(EXP)/run (make experiment-fashion)" >&2; exit 1; }
	@sh .ci/deps data
	@echo "== evaluate on the test set"
	cmd/mm-eval --model $(EXP)/run --ema --data '$(EXP)/test-*.mms' --max-docs $(EXP_EVAL_DOCS) \
		--bpd --bpd-samples $(EXP_BPD_SAMPLES) --classes $(EXP)/classes.txt --read-t $(EXP_READ_T) --per-class $(EXP_PER_CLASS) \
		--sampler $(EXP_SAMPLER) --steps $(EXP_SAMPLE_STEPS) --cfg $(EXP_CFG) --threads $(EXP_THREADS) \
		--samples $(EXP)/samples --json-file $(EXP)/figures.json $(EXP_EVAL_ARGS) \
		> $(EXP)/figures.txt 2> $(EXP)/eval.log || { cat $(EXP)/eval.log; exit 1; }
	sed -i '/^training: /!d' $(EXP)/times.txt
	sed -n 's/^mm-eval: \(.*: [0-9.]* s\)$$/\1/p' $(EXP)/eval.log >> $(EXP)/times.txt
	@echo "== an independent judge (tests/ref/judge.py: a CNN trained on the real training images only)"
	@sh .ci/deps ref
	@[ -f $(EXP)/judge.pt ] || { t0=$$(date +%s); /usr/bin/python3 tests/ref/judge.py train --data $(EXP_SRC) \
		--out $(EXP)/judge.pt 2>/dev/null && echo "judge training: $$(( $$(date +%s) - t0 )) s" >> $(EXP)/times.txt; }
	/usr/bin/python3 tests/ref/judge.py eval --model $(EXP)/judge.pt --data $(EXP_SRC) --per-grid $(EXP_PER_CLASS) \
		$$(i=0; for f in $(EXP)/samples/[0-9][0-9]-*.png; do echo "--grid $$i=$$f"; i=$$((i + 1)); done) \
		--json $(EXP)/judge.json > $(EXP)/judge.txt
	@cat $(EXP)/judge.txt >> $(EXP)/figures.txt
	@echo "== 12 images per class in one labelled grid (the samplers' defaults)"
	cmd/mm-sample --model $(EXP)/run --ema --prompts $(EXP)/classes.txt --image -n 12 --batch 60 --max-tokens 0 \
		--sampler $(EXP_SAMPLER) --steps $(EXP_SAMPLE_STEPS) --cfg $(EXP_CFG) --threads $(EXP_THREADS) \
		-o $(EXP)/grid --grid $(EXP)/grid.png --grid-scale 2 > /dev/null
	@cat $(EXP)/figures.txt
	@echo
	@cat $(EXP)/times.txt
	@echo "figures: $(EXP)/figures.txt $(EXP)/figures.json; samples: $(EXP)/samples/"
	@if [ "$(EXP_SAVE)" = 1 ]; then mkdir -p data/results/fashion-mnist/samples && \
		cp $(EXP)/figures.txt $(EXP)/figures.json $(EXP)/judge.json $(EXP)/times.txt $(EXP)/grid.png \
		   data/results/fashion-mnist/ && \
		cp $(EXP)/samples/*.png data/results/fashion-mnist/samples/ && echo "saved to data/results/fashion-mnist/"; fi

# The sampling sweep on the experiment's model (data/fashion-sweep.sh): 100 images per class at
# each setting, judged against the validation images (never the test set); the table and the
# two plots into SWEEP_OUT.
SWEEP_OUT ?= data/results/fashion-mnist
sweep-fashion: all
	@sh .ci/deps data
	@sh .ci/deps plot
	@sh .ci/deps ref
	sh data/fashion-sweep.sh $(EXP)/run $(EXP)/judge.pt $(SWEEP_OUT) $(EXP_THREADS)

# The Twemoji experiment: every emoji of npm emoji-datasource-twitter 16.0.0 with a 64x64
# Twitter image (1,911, RGBA over white), its lower-cased name as its caption, 191 names held
# out (data/twemoji-heldout.txt). Tokenize (patch 8: 64 patches of 192 values, as wide as a
# row of the model needs; patch 4 would be 256 patches, four times the positions), train on the
# training names, then measure on both sets: caption retrieval among all 1,910 names, text-to-
# image retrieval against all 1,911 emoji, bits per dimension on the held-out emoji, and grids
# of generated emoji beside the real ones. Everything lands in $(TW); the figures, grids and
# times are copied to data/results/twemoji/ by `make experiment-twemoji TW_SAVE=1`.
# A quick end-to-end check: make experiment-twemoji TW_STEPS=5 TW_DIM=32 TW_LAYERS=1 TW_HEADS=2
#   TW_T2I_TRAIN=8 TW_RET_DOCS=8 TW_SAMPLE_STEPS=2
TW ?= out/twemoji
TW_VOCAB ?= 1024
TW_DIM ?= 256
TW_LAYERS ?= 6
TW_HEADS ?= 4
# Rows of 1,408 positions packed with about 19 documents (BOS, name, BOI, 64 patches, EOI, EOS:
# 72 on average), 2 rows a step: 2.5% padding where rows of 88 (one document each, the longest
# name needs 88) padded 17.8%; 40 steps of each: 4,481 positions/s against 4,602, 16% more
# documents a second. Attention stays within each document (lib/kernels.h).
TW_SEQ ?= 1408
TW_BATCH ?= 2
# 5,000 steps of 2,816 positions at about 4,340 positions/s: 55 minutes
TW_STEPS ?= 5000
TW_LR ?= 1e-3
TW_WARMUP ?= 100
TW_EMA ?= 0.999
# a name after its image in 20% of the pairs (mm-train's default): with 30% caption retrieval
# rose (94.5% against 82.5%) but text to image fell (48.7% against 70.2%; README)
TW_IMAGE_FIRST ?= 0.2
TW_THREADS ?= 2
TW_TRAIN_ARGS ?=
TW_SAMPLER ?= heun
TW_SAMPLE_STEPS ?= 25
TW_CFG ?= 2
# guided at every noise level: text-to-image retrieval asks for the one emoji of a name, and on
# [0.2, 1] (mm-sample's default) top-1 fell from 58.7% to 46.3% (README)
TW_CFG_INTERVAL ?= 0,1
TW_T2I_TRAIN ?= 600
TW_RET_DOCS ?= 0
TW_BPD_SAMPLES ?= 4
TW_SAVE ?= 0
experiment-twemoji: all
	@sh .ci/deps data
	@mkdir -p $(TW)
	@echo "== data: npm emoji-datasource-twitter"
	sh data/twemoji-full.sh $(TW)/set
	@# TW_T2I_TRAIN = N: N training names evenly spaced in byte order (0: all)
	awk -v n=$(TW_T2I_TRAIN) 'NR == FNR { total++; next } n == 0 || int((FNR - 1) * n / total) != int(FNR * n / total) \
		' $(TW)/set/train-captions.txt $(TW)/set/train-captions.txt > $(TW)/t2i-train.txt
	@echo "== tokenize: $$(wc -l < $(TW)/set/train.jsonl) training and $$(wc -l < $(TW)/set/heldout.jsonl) held-out emoji"
	cmd/mm-tokenize --format jsonl $(TW)/set/train.jsonl --image-size 64 --channels 3 --patch 8 \
		--train-tokenizer $(TW)/tok.bin --vocab-size $(TW_VOCAB) --threads $(TW_THREADS) -o $(TW)/train
	cmd/mm-tokenize --format jsonl $(TW)/set/heldout.jsonl --image-size 64 --channels 3 --patch 8 \
		--tokenizer $(TW)/tok.bin --threads $(TW_THREADS) -o $(TW)/heldout
	@echo "== train: $(TW_STEPS) steps"
	rm -rf $(TW)/run
	start=$$(date +%s); \
	cmd/mm-train --data '$(TW)/train-*.mms' --tokenizer $(TW)/tok.bin --dim $(TW_DIM) --layers $(TW_LAYERS) \
		--heads $(TW_HEADS) --seq-len $(TW_SEQ) --batch $(TW_BATCH) --steps $(TW_STEPS) --lr $(TW_LR) \
		--warmup $(TW_WARMUP) --ema $(TW_EMA) --image-first $(TW_IMAGE_FIRST) --threads $(TW_THREADS) \
		--log-every 50 --ckpt-every 1000 $(TW_TRAIN_ARGS) --out $(TW)/run && \
	echo "training: $$(( $$(date +%s) - start )) s" > $(TW)/times.txt
	$(MAKE) --no-print-directory twemoji-eval

# The evaluation of make experiment-twemoji alone, on the model and data already in $(TW).
twemoji-eval: all
	@[ -f $(TW)/run/latest ] || { echo "twemoji-eval: no model in $(TW)/run (make experiment-twemoji)" >&2; exit 1; }
	@echo "== evaluate: held-out names"
	cmd/mm-eval --model $(TW)/run --ema --data '$(TW)/heldout-*.mms' --bpd --bpd-samples $(TW_BPD_SAMPLES) \
		--captions $(TW)/set/captions.txt --pmi --t2i $(TW)/set/heldout-captions.txt \
		--reference '$(TW)/train-*.mms' --reference '$(TW)/heldout-*.mms' --sampler $(TW_SAMPLER) \
		--steps $(TW_SAMPLE_STEPS) --cfg $(TW_CFG) --cfg-interval $(TW_CFG_INTERVAL) --compare $(TW)/heldout-t2i.png --compare-scale 2 \
		--threads $(TW_THREADS) --json-file $(TW)/heldout.json > $(TW)/heldout.txt 2> $(TW)/heldout.log \
		|| { cat $(TW)/heldout.log; exit 1; }
	@echo "== evaluate: training names"
	cmd/mm-eval --model $(TW)/run --ema --data '$(TW)/train-*.mms' --max-docs $(TW_RET_DOCS) --no-losses \
		--captions $(TW)/set/captions.txt --pmi --t2i $(TW)/t2i-train.txt \
		--reference '$(TW)/train-*.mms' --reference '$(TW)/heldout-*.mms' --sampler $(TW_SAMPLER) \
		--steps $(TW_SAMPLE_STEPS) --cfg $(TW_CFG) --cfg-interval $(TW_CFG_INTERVAL) --compare $(TW)/train-t2i.png --compare-scale 2 \
		--threads $(TW_THREADS) --json-file $(TW)/train.json > $(TW)/train.txt 2> $(TW)/train.log \
		|| { cat $(TW)/train.log; exit 1; }
	@echo "== greedy captions of 24 held-out emoji, beside their names"
	head -n 24 $(TW)/set/heldout.jsonl | jq -r '"$(TW)/set/" + .file_name' > $(TW)/heldout-images.txt
	cmd/mm-sample --model $(TW)/run --ema --caption-list $(TW)/heldout-images.txt --threads $(TW_THREADS) \
		> $(TW)/heldout-greedy.tsv 2> $(TW)/caption.log || { cat $(TW)/caption.log; exit 1; }
	head -n 24 $(TW)/set/heldout.jsonl | jq -r .text | paste $(TW)/heldout-greedy.tsv - \
		| awk -F'\t' 'BEGIN { print "| emoji | name | generated caption |"; print "|---|---|---|" } \
			{ n = split($$1, p, "/"); print "| " p[n] " | " $$3 " | " $$2 " |" }' > $(TW)/heldout-captions.md
	sed -i '/^held-out \|^training [a-z]/d' $(TW)/times.txt
	sed -n 's/^mm-eval: \(.*: [0-9.]* s\)$$/held-out \1/p' $(TW)/heldout.log >> $(TW)/times.txt
	sed -n 's/^mm-eval: \(.*: [0-9.]* s\)$$/training \1/p' $(TW)/train.log >> $(TW)/times.txt
	@cat $(TW)/heldout.txt $(TW)/train.txt $(TW)/times.txt
	@if [ "$(TW_SAVE)" = 1 ]; then mkdir -p data/results/twemoji && \
		cp $(TW)/heldout.txt $(TW)/heldout.json $(TW)/train.txt $(TW)/train.json $(TW)/times.txt \
		   $(TW)/heldout-t2i.png $(TW)/train-t2i.png $(TW)/heldout-captions.md data/results/twemoji/ && \
		echo "saved to data/results/twemoji/"; fi

# `make fuzz FUZZ_TARGET=name FUZZ_SECONDS=600`: builds tests/fuzz/fuzz_NAME.c with clang's
# libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer against libmm's sources compiled the
# same way into tests/fuzz/build/ (the normal objects are untouched), and runs it on a copy of
# tests/fuzz/corpus/NAME (tests/fuzz/build/NAME-corpus), so new inputs never land in the
# committed corpus. A crash leaves its input in tests/fuzz/build/. FUZZ_ARGS adds libFuzzer
# options. `make test` replays every committed corpus without clang (tests/test_fuzz.c).
FUZZ_TARGET ?= shard
FUZZ_SECONDS ?= 600
FUZZ_ARGS ?=
FUZZ_CC = clang
FUZZ_DIR = tests/fuzz/build
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# CRC checks are skipped in this build (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION), so that
# mutations reach the parsers behind them.
FUZZ_CFLAGS = -O1 -g -std=gnu11 -Wall -Wextra -fopenmp -fno-math-errno -Ilib $(PKG_CFLAGS) $(FUZZ_SAN) \
	-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_OBJ := $(patsubst lib/%.c,$(FUZZ_DIR)/lib/%.o,$(LIB_SRC))
DEPS_FUZZ_OK := .ci/.deps-fuzz-ok

$(DEPS_FUZZ_OK): .ci/deps
	@sh .ci/deps build fuzz
	@touch $@
$(FUZZ_DIR)/lib/%.o: lib/%.c $(HEADERS) | $(DEPS_OK) $(DEPS_FUZZ_OK)
	@mkdir -p $(FUZZ_DIR)/lib
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(FUZZ_DIR)/libmm.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ_DIR)/libmm.a cmd/cli.c cmd/opts.c
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libmm.a \
		-fopenmp $(PKG_LIBS) -lpthread -lm
fuzz: $(FUZZ_DIR)/fuzz_$(FUZZ_TARGET)
	rm -rf $(FUZZ_DIR)/$(FUZZ_TARGET)-corpus
	mkdir -p $(FUZZ_DIR)/$(FUZZ_TARGET)-corpus
	cp tests/fuzz/corpus/$(FUZZ_TARGET)/* $(FUZZ_DIR)/$(FUZZ_TARGET)-corpus/
	cd $(FUZZ_DIR) && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./fuzz_$(FUZZ_TARGET) \
		-max_total_time=$(FUZZ_SECONDS) -max_len=65536 -artifact_prefix=$(FUZZ_TARGET)- \
		$$(cat ../$(FUZZ_TARGET).options 2>/dev/null) $(FUZZ_ARGS) $(FUZZ_TARGET)-corpus </dev/null

# Regenerates the PyTorch fixtures under tests/ref (needs python3-torch).
ref: all
	@sh .ci/deps ref
	@sh tests/ref/make.sh

install: all completion
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/mm \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 \
		$(DESTDIR)$(PREFIX)/$(COMPLETION_DIR)
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
ifeq ($(MPI),1)
	install -m 755 $(MPI_TOOL) $(DESTDIR)$(PREFIX)/bin/
endif
	install -m 644 lib/libmm.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(filter-out %_priv.h,$(wildcard lib/*.h)) $(DESTDIR)$(PREFIX)/include/mm/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(wildcard man/*.5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 $(COMPLETIONS) $(DESTDIR)$(PREFIX)/$(COMPLETION_DIR)/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(MM_VERSION)|' -e 's|@PKGS@|$(PKGS)|' mm.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/mm.pc

# Removes what install put there (the folders it made only when they are left empty).
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(TOOLS) $(MPI_TOOL)))
	rm -f $(DESTDIR)$(PREFIX)/lib/libmm.a $(DESTDIR)$(PREFIX)/lib/pkgconfig/mm.pc
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/include/mm/,$(notdir $(wildcard lib/*.h)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(wildcard man/*.1)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man5/,$(notdir $(wildcard man/*.5)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man7/,$(notdir $(wildcard man/*.7)))
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/$(COMPLETION_DIR)/,$(notdir $(COMPLETIONS)))
	-rmdir $(DESTDIR)$(PREFIX)/include/mm 2>/dev/null

clean:
	rm -f lib/*.o lib/libmm.a cmd/*.o cmd/libcli.a $(TOOLS) $(MPI_TOOL)
	rm -rf cmd/mpi share
	rm -rf tests/bin tests/tmp tests/bench/bin tests/bench/tmp tests/fuzz/build .build-flags
