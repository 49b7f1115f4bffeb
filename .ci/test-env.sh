# Sourced by `make test`: point the tests at the local PostgreSQL and Redis when they answer.
if [ -z "${TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
   && pg_isready -q -h 127.0.0.1 -p 5432; then
  export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
fi
if [ -z "${TEST_REDIS_URL:-}" ] && (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  export TEST_REDIS_URL="redis://127.0.0.1:6379/15"
fi
