# bench/common.sh: shared by the bench/ scripts (sourced, not run).
#
# bench_jpegs: prints the folder of the default benchmark images, 1,000
# synthetic 500x375 JPEGs (quality 90, 10 classes), written once to
# ~/.cache/zftrain/bench-jpegs (or $ZFTRAIN_CACHE) with the release binary.
bench_jpegs() {
  local cache=${ZFTRAIN_CACHE:-$HOME/.cache/zftrain}/bench-jpegs
  if [ ! -d "$cache/train" ]; then
    rm -rf "$cache.tmp"
    target/release/zftrain data synth --out "$cache.tmp" --classes 10 --train-per-class 100 \
      --val-per-class 1 --width 500 --height 375 >/dev/null
    mv "$cache.tmp" "$cache"
  fi
  echo "$cache/train"
}
