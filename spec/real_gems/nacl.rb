require "rbnacl"
key = RbNaCl::Random.random_bytes(RbNaCl::SecretBox.key_bytes)
box = RbNaCl::SecretBox.new(key)
nonce = "\x01" * box.nonce_bytes
ct = box.encrypt(nonce, "secret message")
p box.decrypt(nonce, ct)
p RbNaCl::Hash.sha256("abc").unpack1("H*")
sk = RbNaCl::Signatures::Ed25519::SigningKey.new("\x02" * 32)
sig = sk.sign("msg"); p sk.verify_key.verify(sig, "msg")
p defined?(FiddleJit) ? :fiddle_jit : :ffi
