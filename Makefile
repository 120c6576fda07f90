# Router: build, run the demo, test, benchmark. Only the .NET 10 SDK is needed for build/run/test.
DOTNET ?= dotnet
CONFIG ?= Release
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1

.PHONY: build run test test-deps bench bench-e2e fuzz clean

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

clean:
	$(DOTNET) clean Router.sln
	rm -rf TestResults BenchmarkDotNet.Artifacts
