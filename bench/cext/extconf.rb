# frozen_string_literal: true

# Hand-written C extension used as the "C ext" column of bench/run.rb.
# Built out of tree: bench/run.rb runs this with Dir.chdir(bench/build/<arch>-ruby<X.Y>),
# then `make`. Links against that directory's libfjbench.so (built first by run.rb).
require "mkmf"

build_dir = Dir.pwd # bench/setup.rb runs this from its build directory

$LDFLAGS << " -L#{build_dir} -Wl,-rpath,#{build_dir}"
have_library("fjbench", "add") or abort "libfjbench.so not found in #{build_dir} (build bench/fixture first)"
have_library("m", "sin") or abort "libm not found"

create_makefile("fj_bench_cext")
