"""PostgreSQL store (asyncpg): versioned migrations, LISTEN/NOTIFY, leases."""
