# The two commands a new user needs: `make run` (the whole platform locally, with a demo) and `make test`.
.PHONY: run test deps kafka-fetch bench typecheck clean consumer-binary

deps:
	bash scripts/install-system.sh
	bash scripts/npm-deps.sh
	bash scripts/kafka.sh fetch

run: deps
	bash scripts/dev.sh

test:
	bash scripts/test.sh

bench: deps
	bash scripts/bench.sh

typecheck:
	npx tsc -p tsconfig.json --noEmit

# pioneer-consumer as one executable for linux-x64 that needs no Node.js where it runs (consumer-sdk/README.md)
consumer-binary:
	bash scripts/npm-deps.sh
	bash consumer-sdk/scripts/build-binary.sh consumer-sdk/dist-bin

clean:
	-bash scripts/kafka.sh stop .run/dev/kafka
	-bash scripts/redis.sh stop .run/dev/redis
	rm -rf .run
