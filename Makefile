# The two commands a new user needs: `make run` (the whole platform locally, with a demo) and `make test`.
.PHONY: run test deps kafka-fetch bench typecheck clean

deps:
	bash scripts/install-system.sh
	[ -d node_modules ] || npm ci --no-audit --no-fund
	bash scripts/kafka.sh fetch

run: deps
	bash scripts/dev.sh

test:
	bash scripts/test.sh

bench: deps
	bash scripts/bench.sh

typecheck:
	npx tsc -p tsconfig.json --noEmit

clean:
	-bash scripts/kafka.sh stop .run/dev/kafka
	-bash scripts/redis.sh stop .run/dev/redis
	rm -rf .run
