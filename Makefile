# Imago — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
PKGS     := ./...
BIN      := bin
# Lambda builds: arm64 Linux, no cgo, the smallest binary that starts fastest.
LAMBDA_GOOS   ?= linux
LAMBDA_GOARCH ?= arm64
LAMBDA_FLAGS  := -tags lambda.norpc -trimpath -ldflags "-s -w"

.PHONY: help run install run-aws test test-unit bench lint vet fmt build build-local clean \
        testenv-up testenv-down invoke deploy \
        build-UploadFunction build-DownloadFunction build-MetadataFunction

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-24s %s\n", $$1, $$2}'

run: ## serve the HTTP API on IMAGO_ADDR (embedded backends unless IMAGO_TABLE is set)
	@echo "run: building bin/imago (the first build downloads the modules and takes a minute or two)" >&2
	@$(GO) build -o $(BIN)/imago ./cmd/imago
	$(BIN)/imago serve

install: ## install the imago command into $(go env GOPATH)/bin (or GOBIN)
	$(GO) install ./cmd/imago
	@echo "install: imago is in $$($(GO) env GOBIN | grep . || echo $$($(GO) env GOPATH)/bin)" >&2

run-aws: ## start the local S3/DynamoDB/KMS/Redis servers, then serve on them (presigned uploads included)
	scripts/testenv up
	@echo "run-aws: building bin/imago" >&2
	@$(GO) build -o $(BIN)/imago ./cmd/imago
	eval "$$(scripts/testenv env)" && \
	  curl -fsS -X PUT --data "http://$${IMAGO_ADDR:-127.0.0.1:8080}/_local/s3-events" \
	    "$$IMAGO_TESTENV_RELAY_URL/target?prefix=$${IMAGO_STAGING_PREFIX:-staging/}&events=ObjectCreated&shape=aws" && \
	  $(BIN)/imago serve

test: ## install and start the local servers, run every test (-race), stop them
	scripts/test

test-unit: ## tests that need no local server (integration tests skip)
	$(GO) test -race -count=1 $(PKGS)

bench: ## benchmarks, each reported against a baseline measured in the same run
	scripts/bench

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 10s; FUZZ_MATCH=regexp picks some); make test runs their seeds
	FUZZTIME="$(or $(FUZZTIME),10s)" scripts/fuzz

.PHONY: load
load: ## drive a service with many clients and check every byte (starts the local servers and serve unless IMAGO_URL is set; LOAD_CLIENTS, LOAD_DURATION)
	scripts/load

vet: ## go vet
	$(GO) vet $(PKGS)

fmt: ## gofmt check
	@out=$$(gofmt -l cmd functions internal); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: fmt vet ## gofmt, go vet, staticcheck
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

testenv-up: ## start the local servers (scripts/testenv up)
	scripts/testenv up

testenv-down: ## stop the local servers
	scripts/testenv down

invoke: ## run one function under the Lambda emulator with an event: make invoke FN=download EVENT=events/download.json
	scripts/invoke "$(FN)" "$(EVENT)"

build-local: ## the imago command and the three bootstraps for this machine, in bin/
	$(GO) build -o $(BIN)/imago ./cmd/imago
	for fn in upload download metadata; do \
	  CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o $(BIN)/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done

# sam build calls build-<LogicalId> with ARTIFACTS_DIR set (BuildMethod: makefile).
build-UploadFunction:
	GOOS=$(LAMBDA_GOOS) GOARCH=$(LAMBDA_GOARCH) CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/upload
build-DownloadFunction:
	GOOS=$(LAMBDA_GOOS) GOARCH=$(LAMBDA_GOARCH) CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/download
build-MetadataFunction:
	GOOS=$(LAMBDA_GOOS) GOARCH=$(LAMBDA_GOARCH) CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/metadata

build: ## the three Lambda bootstraps for arm64 Linux, in .aws-sam-like folders under bin/lambda
	$(MAKE) build-UploadFunction ARTIFACTS_DIR=$(BIN)/lambda/UploadFunction
	$(MAKE) build-DownloadFunction ARTIFACTS_DIR=$(BIN)/lambda/DownloadFunction
	$(MAKE) build-MetadataFunction ARTIFACTS_DIR=$(BIN)/lambda/MetadataFunction

# sam build runs the build-<Function> targets above; sam deploy takes
# samconfig.toml (stack imago, every parameter at its template default
# unless SAM_DEPLOY_FLAGS says otherwise, e.g. SAM_DEPLOY_FLAGS=--guided).
SAM ?= sam
deploy: ## sam build && sam deploy (AWS credentials of the target account in the environment)
	@command -v $(SAM) >/dev/null 2>&1 || { \
	  echo "deploy: the AWS SAM CLI ('$(SAM)') is not installed; see https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html" >&2; \
	  echo "deploy: make build builds the three bootstraps without it; scripts/cfn-check checks the template" >&2; \
	  exit 127; }
	$(SAM) validate --lint
	$(SAM) build
	$(SAM) deploy $(SAM_DEPLOY_FLAGS)

clean: ## remove build output
	rm -rf $(BIN)
