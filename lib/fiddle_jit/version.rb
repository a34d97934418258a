# frozen_string_literal: true

module FiddleJit
  VERSION = "0.2.0"
end
