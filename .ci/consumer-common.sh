# Shared by .ci/consumer.sh (the Effect 3 line) and .ci/consumer-v4.sh (the Effect 4 line); sourced, in the
# throwaway project's directory. `readme` is the README whose commands and TypeScript blocks the consumer follows.

# The first line of $readme that starts with $1 (a command the README tells users to run), or a failure naming it.
readme_command() { grep -m1 "^$1" "$readme" || { echo "$readme has no line starting with: $1" >&2; exit 1; }; }

# Exactly one copy of effect installed, of major $1: npm resolved every peer to the app's own.
one_effect() {
  local copies
  copies="$(find node_modules \( -path 'node_modules/effect/package.json' -o -path '*/node_modules/effect/package.json' \) | wc -l)"
  echo "copies of effect installed: $copies, effect $(node -p 'require("effect/package.json").version')"
  test "$copies" -eq 1
  test "$(node -p 'require("effect/package.json").version.split(".")[0]')" -eq "$1"
  npm ls effect >/dev/null
}

# Every TypeScript block of $readme as readme-N.ts, type-checked as a consumer would write it (tsconfig.readme.json).
check_readme_blocks() {
  awk '/^```ts$/ { n++; out = sprintf("readme-%d.ts", n); next } /^```$/ { out = ""; next } out != "" { print > out }' "$readme"
  printf '{ "extends": "./tsconfig.json", "compilerOptions": { "noEmit": true }, "files": [%s] }\n' \
    "$(ls readme-*.ts | sed 's/.*/"&"/' | paste -sd, -)" > tsconfig.readme.json
  echo "README TypeScript blocks: $(ls readme-*.ts | wc -l)"
  npx tsc -p tsconfig.readme.json
}
