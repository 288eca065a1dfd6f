import socket, sys
l=socket.create_server(("127.0.0.1", int(sys.argv[1]))); c,_=l.accept(); v=memoryview(bytearray(1<<20)); n=0
while k:=c.recv_into(v): n+=k
