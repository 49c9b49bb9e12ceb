"""The workflow report's figures: training curves, corpus and tokenizer statistics, runtime
and memory per rule, the JGLUE table (``snakemake --report report.html`` embeds them)."""
