# Router: build, run the demo, test, benchmark. Only the .NET 10 SDK is needed for build/run/test.
DOTNET ?= dotnet
CONFIG ?= Release
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1

.PHONY: build run test test-deps bench bench-e2e fuzz clean publish bench-check bench-baseline

build:
	$(DOTNET) build Router.sln -c $(CONFIG)

# Starts the router on its built-in demo: two in-process upstreams and a config that routes to them.
run:
	DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 $(DOTNET) run --project Router.Net -c $(CONFIG) -- --demo

# The dashboard test drives headless Chromium (Debian's package); install it on a fresh machine.
test-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the dashboard's browser test"; \
	  sudo=""; [ "$$(id -u)" -ne 0 ] && sudo="sudo"; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium >/dev/null; }

# Both test projects write a .trx into TestResults (one file each); the second runs even when the first fails.
test: test-deps
	$(DOTNET) test Router.Tests/Router.Tests.csproj -c $(CONFIG) --logger "trx;LogFileName=router-tests.trx" --logger "console;verbosity=normal" --results-directory TestResults; \
	status=$$?; \
	$(DOTNET) test Router.EmbeddingTests/Router.EmbeddingTests.csproj -c $(CONFIG) --logger "trx;LogFileName=embedding-tests.trx" --logger "console;verbosity=normal" --results-directory TestResults || status=1; \
	exit $$status

# Micro benchmarks (BenchmarkDotNet); results are copied to bench-results/.
bench:
	$(DOTNET) run --project Router.Benchmarks -c Release -- --filter '*' --memory --exporters github --artifacts BenchmarkDotNet.Artifacts

# End-to-end comparison with nginx, HAProxy and YARP (wrk, ~10 min); writes bench-results/e2e-<date>.md.
bench-e2e: ; bash bench/e2e/run.sh

# Fuzzes one parser under SharpFuzz + AFL++ (installs both if missing): make fuzz TARGET=request|response|chunked SECONDS=600
TARGET ?= request
SECONDS ?= 600
fuzz:
	bash fuzz/run.sh $(TARGET) $(SECONDS)

# Single native `router` binary (Native AOT) in artifacts/. Needs clang and zlib1g-dev (installed from Debian when missing).
RID ?= linux-x64
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
publish:
	@missing=""; command -v clang >/dev/null 2>&1 || missing="$$missing clang"; \
	dpkg -s zlib1g-dev >/dev/null 2>&1 || missing="$$missing zlib1g-dev"; \
	if [ -n "$$missing" ]; then echo "Installing native toolchain:$$missing"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; fi
	$(DOTNET) publish Router.Net/Router.Net.csproj -c Release -r $(RID) -p:PublishAot=true -o artifacts/publish
	cp artifacts/publish/Router.Net artifacts/router
	@ls -l artifacts/router

# Regression gate for the micro benchmarks: a short BenchmarkDotNet run (~5 min) compared with
# bench-results/baseline/benchmarks.json. A benchmark fails when it allocates more, or is >10% slower in absolute mean
# AND in ratio to its class's baseline method. Offenders are re-run once and must be slower again (fastest of the two
# runs counts), since the machine is shared. Fails with a table of offenders.
BENCH_DIR = BenchmarkDotNet.Artifacts
BENCH_RUN = $(DOTNET) run --project Router.Benchmarks -c Release -- --job short --memory --exporters json
BENCH_GATE = $(DOTNET) run --project Router.Benchmarks -c Release --no-build -- benchcheck --baseline bench-results/baseline/benchmarks.json
bench-check:
	rm -rf $(BENCH_DIR)/check $(BENCH_DIR)/recheck
	$(BENCH_RUN) --filter '*' --artifacts $(BENCH_DIR)/check
	@set -f; $(BENCH_GATE) --results $(BENCH_DIR)/check/results --offenders $(BENCH_DIR)/check/offenders.txt || { \
		echo "Re-running the offenders to tell a regression from noise: $$(cat $(BENCH_DIR)/check/offenders.txt | tr '\n' ' ')"; \
		$(BENCH_RUN) --filter $$(cat $(BENCH_DIR)/check/offenders.txt) --artifacts $(BENCH_DIR)/recheck && \
		$(BENCH_GATE) --results $(BENCH_DIR)/check/results --results $(BENCH_DIR)/recheck/results; }

# Refreshes the committed baseline from a run on this machine (then commit bench-results/baseline/benchmarks.json).
bench-baseline:
	rm -rf $(BENCH_DIR)/baseline
	$(BENCH_RUN) --filter '*' --artifacts $(BENCH_DIR)/baseline
	$(BENCH_GATE) --results $(BENCH_DIR)/baseline/results --write-baseline

clean:
	$(DOTNET) clean Router.sln
	rm -rf TestResults BenchmarkDotNet.Artifacts
