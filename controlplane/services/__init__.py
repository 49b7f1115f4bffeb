"""Use cases. Each public function is one transaction: it commits on success and rolls back on error."""
