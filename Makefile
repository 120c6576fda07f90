# Router: build, run the demo, test, benchmark. Only the .NET 10 SDK is needed for build/run/test.
DOTNET ?= dotnet
CONFIG ?= Release
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1

.PHONY: build run test bench fuzz clean

build:
	$(DOTNET) build Router.sln -c $(CONFIG)

# Starts the router on its built-in demo: two in-process upstreams and a config that routes to them.
run:
	DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 $(DOTNET) run --project Router.Net -c $(CONFIG) -- --demo

test:
	$(DOTNET) test Router.Tests/Router.Tests.csproj -c $(CONFIG) --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory TestResults

# Micro benchmarks (BenchmarkDotNet); results are copied to bench-results/.
bench:
	$(DOTNET) run --project Router.Benchmarks -c Release -- --filter '*' --memory --exporters github --artifacts BenchmarkDotNet.Artifacts

# Fuzzes one parser under SharpFuzz + AFL++ (installs both if missing): make fuzz TARGET=request|response|chunked SECONDS=600
TARGET ?= request
SECONDS ?= 600
fuzz:
	bash fuzz/run.sh $(TARGET) $(SECONDS)

clean:
	$(DOTNET) clean Router.sln
	rm -rf TestResults BenchmarkDotNet.Artifacts
