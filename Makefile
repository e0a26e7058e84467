# qai — the two commands: `make run` and `make test`. Both install missing
# Debian packages, configure with CMake and build first.
MAKEFLAGS += --no-print-directory
BUILD   ?= build
JOBS    ?= $(shell nproc)
CTEST   = ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
MODEL   ?=
QAI     = $(BUILD)/bin/qai

.PHONY: all deps build run test test-all test-asan bench fuzz clean

all: build

deps:
	@scripts/deps.sh build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: qai serve on 127.0.0.1:8080 (MODEL=path.gguf, PORT=, CHAT=1 to chat).
run: build
	@scripts/deps.sh run
	@scripts/run.sh "$(QAI)" "$(MODEL)"

test: build
	@scripts/deps.sh test
	$(CTEST) -LE slow

test-all: build
	@scripts/deps.sh test
	$(CTEST)

test-asan: deps
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQAI_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir $(BUILD)-asan --output-on-failure -j $(JOBS) -LE slow

bench: build
	@scripts/deps.sh bench
	@bench/run.sh $(BUILD)

fuzz:
	@scripts/deps.sh fuzz
	@CC=clang cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQAI_FUZZ=ON >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS)
	@echo "fuzzers in $(BUILD)-fuzz/fuzz/; e.g. $(BUILD)-fuzz/fuzz/fuzz_gguf fuzz/corpus/gguf -max_total_time=60"

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
