"""modyard appcell-gateway: the cell catalogue, the request log and cell credentials: the Billia -> AMQP -> Cell path"""
