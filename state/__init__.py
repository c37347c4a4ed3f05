"""Everything Guichet keeps in Redis: the connection, key names, USSD sessions, the journal, jobs."""
