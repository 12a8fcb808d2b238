from ual.report import main

main()
