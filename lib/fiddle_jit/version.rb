# frozen_string_literal: true

module FiddleJit
  VERSION = "0.1.0"
end
