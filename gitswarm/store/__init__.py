"""History, audit trail, approvals and locks (SQLAlchemy; SQLite or PostgreSQL). I/O edge."""
