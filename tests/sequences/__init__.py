"""Call scenarios played on a FreeSWITCH event socket (the real switch or the simulator),
recorded as the sequences the worker sees, and compared."""
