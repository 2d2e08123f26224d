# edgedistill: `make demo` (set-up + the main job) and `make test` (set-up + the tests).
#
# Defaults use the CIFAR-10 test bed at ../shared/testbed; point TESTBED= elsewhere, or bring your own
# images and teacher with DATA= (training images), VAL= (optional labelled folder) and TEACHER=.

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
TESTBED  ?= ../shared/testbed
CACHE    ?= .cache
DATADIR  := $(CACHE)/data
OUT      ?= runs/demo

CIFAR    := $(DATADIR)/cifar10
DATA     ?= $(CIFAR)/train
VAL      ?= $(CIFAR)/test
TEACHER  ?= $(TESTBED)/teachers/cifar_resnet56.onnx
STUDENT  ?= mobilenetv3_large_100
METHOD   ?= seed
LIMIT    ?= 20000
EPOCHS   ?= 8

comma    := ,

export EDGEDISTILL_TESTBED := $(abspath $(TESTBED))
export EDGEDISTILL_DATA    := $(abspath $(DATADIR))

.PHONY: setup runtime-env data test demo bench results clean help

help:
	@echo "make demo   set up, then distil $(STUDENT) from $(notdir $(TEACHER)), evaluate, export, benchmark, index"
	@echo "make test   set up, then run the test suite"
	@echo "make bench  pytest-benchmark micro-benchmarks, the standard and the training benchmark (rewrites docs/BENCHMARKS.md)"
	@echo "make results  the reproduction table (rewrites its part of docs/RESULTS.md and docs/results.json)"
	@echo "variables:  TESTBED=$(TESTBED) DATA=$(DATA) VAL=$(VAL) TEACHER=$(TEACHER) OUT=$(OUT)"

setup: $(VENV)/.installed

# torch and torchvision first, pinned (they come from local disk on the reference machine), then the
# project in editable mode with the extras the tests and the demo use.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[train,openvino,demo,dev,tensorboard,ncnn,executorch]' \
	  torch==2.14.1 torchvision==0.29.1
	touch $@

# The deploy side alone, as a device gets it: the base install (no torch) plus the retrieval page and pytest.
# tests/runtime drives its commands on artifacts exported in the main environment (docs/DEPLOY.md).
RUNTIME_VENV ?= .venv-runtime
runtime-env: $(RUNTIME_VENV)/.installed

$(RUNTIME_VENV)/.installed: pyproject.toml
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-build-isolation -e '.[demo]'
	touch $@

# Unpack the test bed's archives once (a few seconds); skipped where no test bed exists.
data:
	@if [ -f "$(TESTBED)/cifar10.tar.gz" ]; then \
	  mkdir -p $(DATADIR); \
	  for a in cifar10 tiny-imagenet-subset; do \
	    d=$$( [ $$a = cifar10 ] && echo cifar10 || echo tiny-imagenet ); \
	    if [ ! -d $(DATADIR)/$$d ]; then echo "unpacking $$a into $(DATADIR)"; \
	      rm -rf $(DATADIR)/.partial && mkdir -p $(DATADIR)/.partial && \
	      tar xzf $(TESTBED)/$$a.tar.gz -C $(DATADIR)/.partial && mv $(DATADIR)/.partial/$$d $(DATADIR)/$$d && \
	      rm -rf $(DATADIR)/.partial; fi; \
	  done; \
	else echo "no test bed at $(TESTBED): tests that need it will be skipped"; fi

test: setup data runtime-env
	EDGEDISTILL_RUNTIME_VENV=$(abspath $(RUNTIME_VENV)) $(BIN)/python -m pytest -q

# The whole pipeline, small: embed a subset once with the teacher (cache-teacher), distil on it, export (ONNX
# fp32/int8, OpenVINO fp32; each parity-checked), benchmark the backends, then index the training images with the
# ONNX student and evaluate retrieval on the validation images. The cached teacher is what buys the epochs: a
# training step that does not run the teacher is about 3x faster here (docs/BENCHMARKS.md).
demo: setup data
	@test -d "$(DATA)" || { echo "make demo: DATA=$(DATA) is not a folder; unpack the test bed or pass DATA=/your/images TEACHER=/your/teacher.onnx"; exit 2; }
	rm -rf $(OUT)
	$(BIN)/edgedistill cache-teacher --data $(DATA) --teacher $(TEACHER) --limit $(LIMIT) --out $(OUT)/teacher-cache
	$(BIN)/edgedistill train --data $(DATA) $(if $(wildcard $(VAL)),--val $(VAL)) --teacher $(TEACHER) \
	  --teacher-cache $(OUT)/teacher-cache --student $(STUDENT) --method $(METHOD) --limit $(LIMIT) \
	  --epochs $(EPOCHS) --batch-size 128 --lr 0.1 --queue-size 16384 --teacher-center --out $(OUT)/student
	$(BIN)/edgedistill export --model $(OUT)/student --format onnx --precision fp32 --out $(OUT)/student/export
	@echo "(an int8 artifact that misses the parity gate is kept as *.failed and the demo goes on)"
	-$(BIN)/edgedistill export --model $(OUT)/student --format onnx --precision int8 --out $(OUT)/student/export
	-$(BIN)/edgedistill export --model $(OUT)/student --format openvino --precision fp32,int8 --out $(OUT)/student/export
	$(BIN)/edgedistill bench $(OUT)/student --data $(or $(wildcard $(VAL)),$(DATA)) --batch-sizes 1,8 \
	  --warmup-s 0.5 --min-time-s 1 --rounds 2 --out $(OUT)/bench
	$(BIN)/edgedistill retrieve index --model $(OUT)/student/export/$(STUDENT)-onnx-fp32.onnx \
	  --images $(DATA) --out $(OUT)/index
	$(if $(wildcard $(VAL)),$(BIN)/edgedistill retrieve eval --index $(OUT)/index --queries $(VAL) --limit 1000 -k 1$(comma)10)
	@echo
	@echo "demo outputs:"
	@echo "  $(OUT)/student          student.pt, metrics.jsonl, summary.json$(if $(wildcard $(VAL)),$(comma) eval.json)"
	@echo "  $(OUT)/student/export   ONNX and OpenVINO artifacts, export.json (parity per artifact)"
	@echo "  $(OUT)/bench            report.md, report.json, report.csv, latency_vs_accuracy.png"
	@echo "  $(OUT)/index            faiss index; search it: $(BIN)/edgedistill retrieve serve --index $(OUT)/index"

# The standard benchmark: pytest-benchmark micro-benchmarks, then every backend of three students at 32 and
# 224 px, written to docs/BENCHMARKS.md. A trained student from `make demo` (or TRAINED=run_dir) adds task parity.
TRAINED  ?= $(OUT)/student
bench: setup data
	$(BIN)/python -m pytest tests/benchmarks -q --benchmark-only --benchmark-autosave \
	  --benchmark-columns=median,iqr,ops,rounds --benchmark-group-by=group
	$(BIN)/python -m tools.bench_suite --out runs/bench --doc docs/BENCHMARKS.md --export-doc '' --cross-check \
	  $(if $(wildcard $(VAL)),--train $(DATA) --val $(VAL)) \
	  $(if $(wildcard $(TRAINED)/student.pt),--trained $(STUDENT)=$(TRAINED))
	$(BIN)/python -m tools.bench_training --data $(CIFAR)/train --teacher $(TESTBED)/teachers/cifar_resnet56.torchscript.pt \
	  --batch-size 128 --limit 4096 --steps 12 --warmup 3 --compiled --out runs/bench/training.json \
	  --markdown runs/bench/training.md --doc docs/BENCHMARKS.md
	@echo "benchmark outputs: docs/BENCHMARKS.md, runs/bench/*-report (report.json, report.csv, report.md, png)"

# The reproduction table (docs/RESULTS.md, docs/results.json): teachers as they are, three students from scratch
# (MoCo-v2) and distilled four ways, one epoch each by default (about 3 CPU-hours on 2 cores). Finished rows are
# reused; on a GPU: make results RESULTS_ARGS="--device cuda --teacher-format torchscript --epochs 30".
RESULTS_ARGS ?=
results: setup data
	$(BIN)/python -m tools.results --data $(CIFAR)/train --val $(CIFAR)/test --teachers $(TESTBED)/teachers \
	  --out runs/results-table $(RESULTS_ARGS)

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) $(CACHE) runs .pytest_cache
