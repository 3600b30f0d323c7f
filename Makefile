# make verify: the read-only checks CI runs. make fix: rewrites files.
.PHONY: verify fix test
verify:
	.ci/run
fix:
	cargo fmt --all
	cargo clippy --workspace --all-targets --fix --allow-dirty --allow-staged
test:
	cargo nextest run --workspace
