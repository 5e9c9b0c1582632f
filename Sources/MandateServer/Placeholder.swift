public enum MandateServerPlaceholder {}
