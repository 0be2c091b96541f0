.PHONY: test pg pg-stop fmt vet

test: ## run the full test suite
	./scripts/test.sh

pg: ## start (or reuse) the local PostgreSQL+pgvector test cluster and print its URL
	./scripts/pg.sh

pg-stop: ## stop the test cluster and remove its data
	./scripts/pg.sh stop

fmt: ## gofmt all Go files
	git ls-files -z --cached --others --exclude-standard -- '*.go' | grep -zvE '(^|/)testdata/' | xargs -0 -r gofmt -w

vet: ## go vet (native and wasm targets)
	go vet ./...
	GOOS=wasip1 GOARCH=wasm go vet ./core/...
	GOOS=js GOARCH=wasm go vet ./core/...
