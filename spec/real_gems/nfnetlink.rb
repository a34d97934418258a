# The interface table over rtnetlink (no privileges needed); lo is index 1.
require "nfnetlink"
t = Netfilter::Netlink.interfaces
p t[1], t[0]
names = []
t.each { |i| names << i[:name] }
p names.include?("lo"), names.size == names.uniq.size
p t[65535]
p defined?(FiddleJit) ? :fiddle_jit : :ffi
