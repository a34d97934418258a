require "nfqueue"

# A netfilter queue message as the kernel sends it (netlink header, nfgenmsg,
# attributes), so the gem's callback runs without any traffic or iptables rule.
def nfattr(type, payload)
  len = 4 + payload.bytesize
  [len, type].pack("SS") + payload + "\0" * (-len % 4)
end

def packet_message(queue, id, payload)
  attrs = nfattr(1, [id, 0x0800, 3].pack("NnC")) +          # NFQA_PACKET_HDR
          nfattr(3, [42].pack("N")) +                        # NFQA_MARK
          nfattr(5, [1].pack("N")) +                         # NFQA_IFINDEX_INDEV (lo)
          nfattr(9, [6, 0, *1..6, 0, 0].pack("nnC8")) +      # NFQA_HWADDR
          nfattr(10, payload)                                # NFQA_PAYLOAD
  body = [Socket::AF_INET, 0, queue].pack("CCn") + attrs
  [16 + body.bytesize, 3 << 8, 0, 0, 0].pack("LSSLL") + body # NFNL_SUBSYS_QUEUE, NFQNL_MSG_PACKET
end

# Queue numbers are per network namespace, which chroots share: one per process.
QUEUE = Process.pid & 0xffff

p Netfilter::Packet::Header.size, Netfilter::Packet::HardwareAddress.size, Netfilter::Packet::Timeval.size
begin
  q = Netfilter::Queue.new(QUEUE)
rescue Netfilter::QueueError => e
  # Without CAP_NET_ADMIN binding a queue fails, the same way on both.
  p e.class, e.message
end
if q
  p q.queue_number == QUEUE, q.net_interfaces[1][:name]
  p q.set_mode(Netfilter::Queue::CopyMode::META).equal?(q), q.set_max_length(16).equal?(q)
  seen = []
  # What #process does before it blocks reading the socket. (No
  # NFQA_TIMESTAMP in the messages: #timestamp would have C write a timeval
  # into the gem's pointer-sized MemoryPointer.)
  q.instance_variable_set(:@callback, proc { |pkt|
    seen << [pkt.id, pkt.protocol, pkt.nfmark, pkt.indev, pkt.indev_name, pkt.outdev, pkt.outdev_name,
             pkt.hw_addr.bytes, pkt.data, pkt.timestamp]
    pkt.data = "changed"
    Netfilter::Packet::ACCEPT
  })
  handle = q.instance_variable_get(:@conn_handle)
  msg = packet_message(QUEUE, 7, "hello")
  p Netfilter::Queue.nfq_handle_packet(handle, msg, msg.bytesize)
  msg = packet_message(QUEUE ^ 1, 8, "other queue")
  p Netfilter::Queue.nfq_handle_packet(handle, msg, msg.bytesize)
  p seen
  q.instance_variable_set(:@callback, proc { raise ArgumentError, "from the callback" })
  msg = packet_message(QUEUE, 9, "raises")
  begin
    Netfilter::Queue.nfq_handle_packet(handle, msg, msg.bytesize)
  rescue ArgumentError => e
    p e.message
  end
  p q.destroy
end
p defined?(FiddleJit) ? :fiddle_jit : :ffi
