from llmcore.cli import main

main()
