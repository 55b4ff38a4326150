# nbp: two commands on a fresh machine.
#   make demo   fetch ONNX Runtime, build, start a private Redis, load the demo bank, serve on :8080
#   make test   the whole suite (real Redis, real ONNX Runtime), with gofmt, vet and staticcheck

SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.cache/onnxruntime/libonnxruntime.so.1
export ONNXRUNTIME_LIB ?= $(ORT_LIB)
export CGO_ENABLED := 1
# The browser tests fail, rather than skip, without chromium (make chromium).
export NBP_REQUIRE_BROWSER := 1
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GO_TEST_FLAGS ?= -race -shuffle=on -count=1 -timeout 20m

.PHONY: demo test build ort web-assets chromium redis promtool lint unit trees calendar metrics-check bench load swap-load overload batch-bench model clean

demo: ort redis build
	./bin/nbp -demo -addr :8080 -audit-spill var/audit-spill

build: web-assets
	go build -o bin/ ./cmd/...

# The pages' front-end libraries (ECharts, the WeCom JS-SDK), pinned and
# checksummed, embedded in the binary.
web-assets:
	@.ci/fetch-web-assets

ort: $(ORT_LIB)
$(ORT_LIB):
	.ci/fetch-onnxruntime

# redis-server is what the demo and the tests start privately.
redis:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi; }

# Debian's chromium drives the pages' browser tests (chromedp), with a CJK font
# for the screenshots to be read.
chromium:
	@{ command -v chromium >/dev/null && [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; } || { \
		echo "installing chromium and fonts-wqy-microhei"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; fi; }

# promtool (Debian package prometheus) lints the /metrics scrape.
promtool:
	@command -v promtool >/dev/null || { \
		echo "installing promtool (package prometheus)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; fi; }

test: ort web-assets chromium redis promtool lint unit trees calendar metrics-check

# The suite again with the test binaries' wall clock moved to two later days
# (.ci/shifted-clock): a test that compares a fixed date with the real clock
# fails here, not on the day its date goes stale.
CALENDAR_DAYS ?= 2027-06-15 2031-06-15
calendar:
	@for d in $(CALENDAR_DAYS); do .ci/shifted-clock $$d -count=1 -timeout 15m ./... || exit 1; done

lint: web-assets
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

unit:
	go test $(GO_TEST_FLAGS) ./...

# The property tests and the fault suite again with a bank's export form in
# force: per-product tree ensembles (the catalog's rules as trees, two
# products left to the rules).
trees:
	NBP_TEST_MODEL=trees go test $(GO_TEST_FLAGS) -count=1 -run 'Invariant|DecideMany|ControlGroup|Reasons|Fault' ./service/

# A /metrics scrape of the server after real traffic, and one of nbp-batch
# -metrics-addr after a small run, linted by promtool (the tests also run
# promtool themselves whenever it is on the PATH).
metrics-check:
	@mkdir -p var
	NBP_METRICS_SCRAPE=$(CURDIR)/var/metrics.txt go test -count=1 -run '^TestMetricsScrape$$' ./service/
	NBP_BATCH_METRICS_SCRAPE=$(CURDIR)/var/batch-metrics.txt go test -count=1 -run '^TestBatchMetricsEndpoint$$' ./cmd/nbp-batch/
	promtool check metrics < var/metrics.txt
	promtool check metrics < var/batch-metrics.txt

# Benchmarks of the request path (go test -bench).
bench: ort redis
	go test -run '^$$' -bench . -benchmem -count 1 ./service/ ./model/ ./features/ ./features/export/

# Load test: nbp against a bare fiber+Redis handler, side by side, p50/p99 and throughput.
# Ten model swaps (the committed model, the rules as tree ensembles) during
# nbp's open loop, through PUT /v1/admin/model.
SWAP_RATE ?= 2500
swap-load: ort redis build
	./bin/nbp-load -skip-baseline -duration 10s -rate $(SWAP_RATE) -swaps 10

load: ort redis build
	./bin/nbp-load

# Overload and degraded mode: nbp (and its Redis) pinned to SERVER_CPUS, the generator to the
# other CPUs; twice nbp's peak, then Redis black-holed and down. The peak is measured on an nbp
# that sheds nothing in the 64-connection closed loop (PEAK_IN_FLIGHT, 64 per pinned CPU, and no
# shedding for the wait to be read or the scheduler's delay, which 64 callers each waiting for the
# others cause on a slower machine); the overload and the faults go to a second nbp with the defaults
# (-max-in-flight=0 -shed-wait=0 -shed-delay=0), or with -adaptive-limit.
SERVER_CPUS ?= 1
PEAK_IN_FLIGHT ?= 64
OVERLOAD = ./bin/nbp-load -skip-baseline -concurrency 64 -rounds 2 -server-cpus $(SERVER_CPUS) -overload -throttle-k 1.2 -nbp-args "-max-in-flight=$(PEAK_IN_FLIGHT) -shed-wait=-1ns -shed-delay=-1ns"
overload: ort redis build
	$(OVERLOAD) -overload-args "-max-in-flight=0 -shed-wait=0 -shed-delay=0" -degraded -json var/overload.json
	$(OVERLOAD) -overload-args "-max-in-flight=0 -shed-wait=0 -shed-delay=0" -overload-conns 128 -json var/overload-pool.json
	$(OVERLOAD) -overload-args "-max-in-flight=0 -shed-wait=0 -shed-delay=0 -adaptive-limit" -json var/overload-adaptive.json

# Batch throughput end to end, and Redis alone doing the same reads and writes (N customers).
N ?= 1000000
batch-bench: ort redis build
	.ci/batch-bench $(N)

# Retrain the committed model and its card on the demo bank.
model: ort
	go run ./cmd/nbp-train -dir models -use

clean:
	rm -rf bin var
