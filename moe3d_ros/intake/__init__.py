"""Camera input, checked and buffered: message checks, stamps, the frame window, per-camera health, decoder stderr (no rclpy)."""
